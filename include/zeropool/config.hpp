// zeropool: version macros and small portability helpers.
#ifndef ZEROPOOL_CONFIG_HPP
#define ZEROPOOL_CONFIG_HPP

#include <cassert>

/// Version of the library, in one place (CMake and b2 read it from here).
#define ZEROPOOL_VERSION_MAJOR 0
#define ZEROPOOL_VERSION_MINOR 2
#define ZEROPOOL_VERSION_PATCH 0
/// MAJOR * 10000 + MINOR * 100 + PATCH.
#define ZEROPOOL_VERSION \
    (ZEROPOOL_VERSION_MAJOR * 10000 + ZEROPOOL_VERSION_MINOR * 100 + ZEROPOOL_VERSION_PATCH)

#if defined(__GNUC__) || defined(__clang__)
#define ZEROPOOL_LIKELY(x) __builtin_expect(!!(x), 1)
#define ZEROPOOL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ZEROPOOL_NOINLINE __attribute__((noinline))
#define ZEROPOOL_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ZEROPOOL_LIKELY(x) (x)
#define ZEROPOOL_UNLIKELY(x) (x)
#define ZEROPOOL_NOINLINE
#define ZEROPOOL_ALWAYS_INLINE inline
#endif

/// States an invariant: checked by assert() in debug builds, an optimiser
/// hint (undefined behaviour if false) in release builds.
#if !defined(NDEBUG)
#define ZEROPOOL_ASSUME(cond) assert(cond)
#elif defined(__GNUC__) || defined(__clang__)
#define ZEROPOOL_ASSUME(cond) \
    do {                      \
        if (!(cond)) __builtin_unreachable(); \
    } while (false)
#else
#define ZEROPOOL_ASSUME(cond) ((void)0)
#endif

#endif // ZEROPOOL_CONFIG_HPP
