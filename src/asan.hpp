// zeropool: AddressSanitizer annotations for idle blocks.
//
// In builds with AddressSanitizer, a block is poisoned while the pool holds it
// idle (in a thread cache or a shard) and unpoisoned when it leaves that tier,
// so a write to a buffer after put() or deallocate() is reported by ASan, as it
// would be after delete. Elsewhere the macros expand to nothing.
#ifndef ZEROPOOL_SRC_ASAN_HPP
#define ZEROPOOL_SRC_ASAN_HPP

#if defined(__SANITIZE_ADDRESS__)
#define ZEROPOOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ZEROPOOL_ASAN 1
#endif
#endif

#ifdef ZEROPOOL_ASAN
#include <sanitizer/asan_interface.h>
/// Marks [p, p + n) as not addressable: the block is idle in the pool.
#define ZEROPOOL_POISON_IDLE(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
/// Marks [p, p + n) as addressable again: the block leaves the pool's idle tiers.
#define ZEROPOOL_UNPOISON_IDLE(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ZEROPOOL_POISON_IDLE(p, n) ((void)(p), (void)(n))
#define ZEROPOOL_UNPOISON_IDLE(p, n) ((void)(p), (void)(n))
#endif

#endif // ZEROPOOL_SRC_ASAN_HPP
