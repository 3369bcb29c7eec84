// zeropool: which thread caches exist, for which pools, and their lifecycle.
//
// Each thread keeps, per pool it has used, one thread_cache. The pool keys
// it by an id that is never reused (pool_handle::id), never by address, so a
// pool built where a destroyed one lived never finds its predecessor's cache.
//
// Who touches what:
//   thread_locals (tls)      the owning thread only: the cache of the pool
//       it used last (mru, for the hit path), a direct-mapped table of
//       (pool id -> cache) behind it, the thread's record table, its
//       shard index and its lifecycle phase. Trivially destructible, so it
//       stays readable during and after the thread's C++ teardown.
//   pool_handle::caches, prev/next (the list of live pools), retired_hits,
//   thread_cache::{pool_, prev_, next_, dead_}   the registry mutex, one per
//       process: taken when a thread first uses a pool, when a thread exits,
//       when a pool is destroyed, by stats() and by the fork handlers; never
//       on the hit path, and never while calling an upstream resource.
//   pool_handle::exiting_flushes   atomic: threads that unlinked a cache from
//       the pool under the mutex and are now handing its blocks back; the
//       pool's destructor waits for it to reach 0 before freeing its shards.
//
// Lock order: registry mutex, then a shard mutex. Nothing takes the registry
// mutex while holding a shard mutex.
#ifndef ZEROPOOL_SRC_THREAD_REGISTRY_HPP
#define ZEROPOOL_SRC_THREAD_REGISTRY_HPP

#include "thread_cache.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>

#if defined(__GNUC__) || defined(__clang__)
#define ZEROPOOL_FAST_TLS __attribute__((tls_model("initial-exec"), visibility("hidden")))
#else
#define ZEROPOOL_FAST_TLS
#endif

namespace zeropool::detail {

/// The registry's view of one pool. Lives as long as the pool.
struct pool_handle {
    /// Hands the blocks of an exiting thread's cache back to the pool (to a
    /// shard, or upstream beyond the caps). Called without the registry mutex.
    using flush_fn = void (*)(pool_handle&, thread_cache&) noexcept;
    /// Takes (or releases) every lock of the pool, around fork().
    using fork_lock_fn = void (*)(pool_handle&) noexcept;
    using fork_unlock_fn = void (*)(pool_handle&, bool in_child) noexcept;

    void* owner = nullptr;
    std::uint64_t id = 0;
    flush_fn flush_exiting = nullptr;
    fork_lock_fn lock_for_fork = nullptr;
    fork_unlock_fn unlock_after_fork = nullptr;

    // Registry mutex.
    thread_cache* caches = nullptr;      // caches of live threads holding blocks of this pool
    pool_handle* prev = nullptr;         // list of live pools (for fork)
    pool_handle* next = nullptr;
    std::uint64_t retired_hits = 0;      // hits of caches that are gone

    std::atomic<std::uint32_t> exiting_flushes{0};
};

/// One entry of the direct-mapped table: the cache of pool `pool_id`.
struct tls_slot {
    std::uint64_t pool_id;
    thread_cache* cache;
};

/// Lifecycle of a thread as the registry sees it.
enum class thread_phase : std::uint8_t {
    fresh,     // has not used any pool yet
    live,      // has a record table; its exit handler is armed
    torn_down, // its exit handler ran: calls bypass the thread caches
};

struct thread_records; // defined in src/thread_registry.cpp

/// Per-thread state, read on every pooled call.
struct thread_locals {
    static constexpr std::size_t slot_count = 8;
    tls_slot mru;                // the pool used last; also in slots
    tls_slot slots[slot_count];
    thread_records* records;
    std::uint32_t index_plus_one; // 0: no index assigned yet
    thread_phase phase;
};

/// The calling thread's state. Zero-initialised, trivially destructible.
inline thread_local thread_locals tls ZEROPOOL_FAST_TLS;

/// The calling thread's cache for pool `id` if that is the pool it used
/// last, else nullptr. The hit path: one TLS compare and one TLS load. Pool
/// ids start at 1, and a slot holds id 0 exactly when its cache is null.
ZEROPOOL_ALWAYS_INLINE thread_cache* find_cache_mru(std::uint64_t id) noexcept {
    if (tls.mru.pool_id != id) return nullptr;
    ZEROPOOL_ASSUME(tls.mru.cache != nullptr);
    return tls.mru.cache;
}

/// The calling thread's cache for pool `id` if it is the last used or in the
/// direct-mapped table (it then becomes the last used), else nullptr.
ZEROPOOL_ALWAYS_INLINE thread_cache* find_cache_fast(std::uint64_t id) noexcept {
    if (thread_cache* c = find_cache_mru(id)) return c;
    const tls_slot& s = tls.slots[id & (thread_locals::slot_count - 1)];
    if (s.pool_id != id) return nullptr;
    tls.mru = s;
    return s.cache;
}

/// The calling thread's cache for `pool`, created and registered on first
/// use. nullptr when the thread is torn down or memory for the record cannot
/// be had (the caller then bypasses the cache).
thread_cache* find_or_create_cache(pool_handle& pool, std::uint32_t capacity) noexcept;

/// The calling thread's cache for `pool` if it has one, else nullptr. Never
/// creates one.
thread_cache* find_cache(const pool_handle& pool) noexcept;

/// A small number unique to the calling thread (assigned on first use), used
/// to pick its home shard.
std::uint32_t thread_index() noexcept;

/// A new pool id; never returns the same value twice in a process.
std::uint64_t new_pool_id() noexcept;

/// Adds `pool` to the list of live pools (installs the fork handlers once).
void register_pool(pool_handle& pool) noexcept;

/// Removes `pool` from the registry: every cache still holding its blocks is
/// marked dead and passed to `drain(context, cache)` under the registry mutex
/// (drain must only move blocks out, not call upstream). Then waits until no
/// exiting thread is still handing blocks back to the pool.
void unregister_pool(pool_handle& pool, void (*drain)(void*, thread_cache&) noexcept,
                     void* context) noexcept;

/// Calls `visit(context, cache)` under the registry mutex for every live
/// cache of `pool`, and returns the hits of its retired caches.
std::uint64_t visit_caches(pool_handle& pool, void (*visit)(void*, const thread_cache&) noexcept,
                           void* context) noexcept;

/// Runs `fn(context)` under the registry mutex (for lazily created shards).
void with_registry_locked(void (*fn)(void*) noexcept, void* context) noexcept;

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_THREAD_REGISTRY_HPP
