// zeropool: which thread caches exist, for which pools, and their lifecycle.
//
// Each thread keeps, per pool it has used, one thread_cache. The pool keys
// it by an id that is never reused (registered_pool::id), never by address, so a
// pool built where a destroyed one lived never finds its predecessor's cache.
//
// Who touches what:
//   thread_locals (tls)      the owning thread only: the cache of the pool
//       it used last (mru, for the hit path), a direct-mapped table of
//       (pool id -> cache) behind it, the thread's record table, its
//       shard index and its lifecycle phase. Trivially destructible, so it
//       stays readable during and after the thread's C++ teardown.
//   registered_pool::{caches, cache_count, prev, next, retired_hits,
//   retired_fits},
//   thread_cache::{pool_, prev_, next_, dead_, draining_, orphaned_}
//       the registry mutex, one per process: taken when a thread first uses
//       a pool, when a thread exits, when a pool is destroyed, by stats(), by
//       a reclaimer walking a pool's caches (registry_lock) and by the fork
//       handlers; never on the hit path. Nothing under it calls a
//       pool except lock_for_fork / unlock_after_fork, which only lock: no
//       upstream call and no allocation happens under it, by construction.
//   registered_pool::exiting_flushes   atomic: threads that unlinked a cache
//       from the pool under the mutex and are now handing its blocks back;
//       unregister_pool waits for it to reach 0.
//   A dead cache (its pool unregistered) with draining_ set is being emptied
//   by the pool's destructor, without the mutex; its owner thread then
//   neither frees it nor touches its slots, but sets orphaned_ so that
//   release_dead_cache() frees it.
//
// Lock order: registry mutex, then a thread cache's lock, then a pool's
// shard-set mutex, then a shard mutex. Nothing takes the registry mutex while
// holding one of the others.
#ifndef ZEROPOOL_SRC_THREAD_REGISTRY_HPP
#define ZEROPOOL_SRC_THREAD_REGISTRY_HPP

#include "thread_cache.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>

// The TLS model of `tls` (docs/building.md, "Thread-local storage"). Code that
// can only end up in an executable (not PIC, or PIE) uses initial-exec: one
// %fs-relative access. Code built for a shared object uses the dynamic model,
// so that the library can be dlopen()ed however little static TLS glibc has
// left; with GCC's TLS descriptors (-mtls-dialect=gnu2, set by the builds)
// that costs a few instructions, and the linker relaxes it back to
// initial-exec when PIC code is linked into an executable.
// -DZEROPOOL_INITIAL_EXEC_TLS=1 forces initial-exec.
#if (defined(__GNUC__) || defined(__clang__)) && \
    (!defined(__PIC__) || defined(__PIE__) || (defined(ZEROPOOL_INITIAL_EXEC_TLS) && ZEROPOOL_INITIAL_EXEC_TLS))
#define ZEROPOOL_FAST_TLS __attribute__((tls_model("initial-exec"), visibility("hidden")))
#elif defined(__GNUC__) || defined(__clang__)
#define ZEROPOOL_FAST_TLS __attribute__((visibility("hidden")))
#else
#define ZEROPOOL_FAST_TLS
#endif

namespace zeropool::detail {

/// What the registry knows of one pool, and what it may ask of it. The pool
/// implements it and registers it for its whole life (register_pool /
/// unregister_pool).
class registered_pool {
public:
    explicit registered_pool(std::uint64_t pool_id) noexcept : id(pool_id) {}
    registered_pool(const registered_pool&) = delete;
    registered_pool& operator=(const registered_pool&) = delete;

    /// Never reused in the process; keys the thread caches.
    const std::uint64_t id;

    /// Hands the blocks of an exiting thread's cache back to the pool (to a
    /// shard, or upstream beyond the caps) and gives its reservation back.
    /// Called without the registry mutex, by the exiting thread.
    virtual void flush_exiting(thread_cache& cache) noexcept = 0;
    /// Takes every lock of the pool before fork(). Called under the registry
    /// mutex: it must only lock, not allocate nor call upstream.
    virtual void lock_for_fork() noexcept = 0;
    /// Releases what lock_for_fork() took, in the parent and in the child.
    virtual void unlock_after_fork() noexcept = 0;

    // Registry mutex.
    thread_cache* caches = nullptr;      // caches of live threads holding blocks of this pool
    std::size_t cache_count = 0;         // length of that list
    registered_pool* prev = nullptr;     // list of live pools (for fork)
    registered_pool* next = nullptr;
    std::uint64_t retired_hits = 0;      // hits of caches that are gone
    fit_totals retired_fits;             // fit books of caches that are gone

    /// Threads that unlinked a cache from the pool under the mutex and are
    /// now handing its blocks back; unregister_pool waits for 0.
    std::atomic<std::uint32_t> exiting_flushes{0};

protected:
    ~registered_pool() = default;
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
thread_cache* find_or_create_cache(registered_pool& pool, std::uint32_t capacity) noexcept;

/// The calling thread's cache for `pool` if it has one, else nullptr. Never
/// creates one.
thread_cache* find_cache(const registered_pool& pool) noexcept;

/// A small number unique to the calling thread (assigned on first use), used
/// to pick its home shard.
std::uint32_t thread_index() noexcept;

/// A new pool id; never returns the same value twice in a process.
std::uint64_t new_pool_id() noexcept;

/// Adds `pool` to the list of live pools (installs the fork handlers once).
void register_pool(registered_pool& pool) noexcept;

/// Removes `pool` from the registry, then waits until no exiting thread is
/// still handing blocks back to it. Returns the caches of live threads that
/// still hold its blocks, linked through next_: each is marked dead, and its
/// owner thread will not free it until the caller, having emptied it without
/// the registry mutex, passes it to release_dead_cache(). So the caller
/// returns those blocks upstream under no registry lock.
thread_cache* unregister_pool(registered_pool& pool) noexcept;

/// Ends the use of a cache returned by unregister_pool(): frees it when its
/// owner thread has let go of it meanwhile, else leaves it to that thread.
void release_dead_cache(thread_cache* cache) noexcept;

/// Holds the registry mutex: while it lives, `pool.caches` may be walked and
/// no cache in it is freed. Nothing may allocate or call upstream under it;
/// a cache's lock() may be taken (lock order: registry, then cache).
class registry_lock {
public:
    registry_lock() noexcept;
    ~registry_lock();
    registry_lock(const registry_lock&) = delete;
    registry_lock& operator=(const registry_lock&) = delete;
};

/// The counters of `pool`'s caches: of its live caches, and the hits of the
/// caches that are gone. Read under the registry mutex.
struct cache_totals {
    std::uint64_t hits = 0;
    std::size_t blocks = 0;
    std::size_t bytes = 0;
    fit_totals fits; // the caches' fit books, those of the caches that are gone included
};
cache_totals sum_caches(const registered_pool& pool) noexcept;

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_THREAD_REGISTRY_HPP
