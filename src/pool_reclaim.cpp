// zeropool: what gives idle memory back upstream, and how one thread reaches
// the caches of the others (freezing them: src/cache_reclaim.hpp).
//
//   trim()            every idle block of every tier, now.
//   release_idle()    release by demand: every ticks_per_period-th of
//                     idle_release_ms, the shards' blocks that have been idle
//                     a whole period, and the blocks and reservation of the
//                     caches that have not changed for a whole period. Run
//                     by the pool's own activity (every thousand cache hits
//                     of a thread, every few dozen slow-path calls) in steps
//                     of at most activity_step_ns, by the program's timer, or
//                     by an idle_releaser (then not by the pool's activity).
//   reclaim_unused_reservation()   the budget ran short: the reservation that
//                     other threads' caches keep without holding blocks for
//                     it goes back to the budget (at most once a millisecond).
//
// docs/design.md, "Memory that goes back", gives the reasons and the figures.
#include "pool_core.hpp"

#include "cache_reclaim.hpp"
#include "coarse_clock.hpp"

#include <chrono>

#include <zeropool/detail/size_class.hpp>

#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace zeropool::detail {

namespace {

/// How long a reclaimer waits for an owner that is in the middle of a cache
/// operation (a few nanoseconds, unless it was preempted or is stopped in a
/// signal handler) before it leaves that cache alone.
constexpr unsigned owner_patience_ms = 100;

/// The least time between two reclaims of unused reservation.
constexpr std::uint64_t room_scan_interval_ns = 1000000;

/// A fine clock, for the deadline of a release step.
std::uint64_t steady_now_ns() noexcept {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

} // namespace

// Under the registry mutex: locks the other threads' caches of this pool that
// `select(cache)` picks, freezes them until quiet, calls `act(freeze)` on each
// quiet one (still under the locks: act must not allocate nor call upstream),
// and unlocks them. act ends each with thaw(); freeze_until_quiet
// thawed the ones whose owner stayed mid-operation. Each cache's put limit stays 0, so that its owner's
// next put takes the slow path, which sets it from what is left. False when
// nothing could be done (no other cache picked, no memory for the
// bookkeeping, or no process-wide barrier on this system).
template <class Select, class Act>
bool pool_core::reclaim_from_other_caches(Select&& select, Act&& act) noexcept {
    const thread_cache* const self = find_cache(*this);
    std::size_t count = 0;
    {
        registry_lock lock;
        count = cache_count;
    }
    std::unique_ptr<cache_freeze[]> items;
    for (;;) {
        if (count == 0) return false;
        items.reset(new (std::nothrow) cache_freeze[count]);
        if (!items) return false;
        registry_lock lock;
        if (cache_count > count) { // threads arrived meanwhile: size again
            count = cache_count;
            continue;
        }
        std::size_t n = 0;
        for (thread_cache* c = caches; c != nullptr; c = c->next_) {
            if (c == self || c->abandoned_ || !select(*c)) continue;
            c->lock().lock();
            items[n++] = cache_freeze(*c);
        }
        const bool frozen = freeze_until_quiet(items.get(), n, owner_patience_ms);
        for (std::size_t i = 0; i < n; ++i) {
            if (items[i].quiet) act(items[i]);
            items[i].cache().lock().unlock();
        }
        return frozen && n != 0;
    }
}

// ---- trim ------------------------------------------------------------------------

std::size_t pool_core::trim() noexcept {
    std::size_t bytes = 0;
    // 1. The calling thread's own cache.
    if (thread_cache* cache = find_cache(*this)) {
        upstream_batch out;
        {
            std::lock_guard<std::mutex> lock(cache->lock());
            empty_cache(*cache, true, out);
            cache->refresh_put_limit();
        }
        bytes += return_upstream(out);
    }
    // 2. The other threads' caches, frozen: their blocks and reservations.
    std::size_t count = 0;
    {
        registry_lock lock;
        count = cache_count;
    }
    bytes += empty_other_caches([](const thread_cache& c) noexcept { return c.count() != 0 || c.reserved() != 0; },
                                count);
    // 3. The shards.
    bytes += return_shards_upstream();
    released_by_trim_.fetch_add(bytes, std::memory_order_relaxed);
    return bytes;
}

// Every idle block of the shards goes upstream, with its budget.
std::size_t pool_core::return_shards_upstream() noexcept {
    std::size_t bytes = 0;
    shards.for_each([&](shard& s) noexcept {
        cached_block b{};
        while (s.take_any(b)) {
            budget.release(upstream_size(b.cls));
            bytes += upstream_size(b.cls);
            return_upstream(b.ptr, b.cls);
        }
    });
    return bytes;
}

// ---- release by demand -----------------------------------------------------------

void pool_core::release_idle_from_activity() noexcept {
    if (releasers_.load(std::memory_order_relaxed) == 0) static_cast<void>(release_idle(activity_step_ns));
}

void* pool_core::release_idle_and_return(void* result) noexcept {
    release_idle_from_activity();
    return result;
}

std::size_t pool_core::release_idle(std::uint64_t budget_ns) noexcept {
    if (tick_ns_ == 0) return 0;
    const std::uint64_t now = coarse_now_ns();
    if (now < next_tick_ns_.load(std::memory_order_relaxed)) return 0;
    std::unique_lock<std::mutex> lock(release_mutex_, std::try_to_lock);
    if (!lock.owns_lock() || now < next_tick_ns_.load(std::memory_order_relaxed)) return 0;
    const auto tick = static_cast<std::uint32_t>((now - epoch_ns_) / tick_ns_);
    std::size_t idle_caches = 0;
    if (tick != last_tick_) { // a new tick: age the caches once
        idle_caches = count_idle_caches(tick - last_tick_);
        last_tick_ = tick;
    }
    const std::uint64_t deadline = budget_ns == 0 ? ~std::uint64_t{0} : steady_now_ns() + budget_ns;
    bool finished = true;
    std::size_t bytes = release_idle_shards(tick, deadline, finished);
    if (idle_caches != 0) bytes += release_idle_caches(idle_caches);
    // Unfinished: due again at once, so that the next clock check goes on.
    next_tick_ns_.store(finished ? now + tick_ns_ : now, std::memory_order_relaxed);
    released_by_demand_.fetch_add(bytes, std::memory_order_relaxed);
    return bytes;
}

// The shards' blocks that became idle before tick - ticks_per_period, that is
// more than a whole period ago, go upstream, a few per shard lock, until the
// deadline (checked between those few).
std::size_t pool_core::release_idle_shards(std::uint32_t tick, std::uint64_t deadline_ns, bool& finished) noexcept {
    finished = true;
    if (tick <= ticks_per_period) return 0;
    const std::uint32_t before = tick - ticks_per_period - 1;
    std::size_t bytes = 0;
    shards.for_each([&](shard& s) noexcept {
        constexpr std::uint32_t chunk = 8;
        cached_block out[chunk];
        while (finished) {
            if (s.probably_empty()) break;
            const std::uint32_t n = s.take_idle_since(before, out, chunk);
            for (std::uint32_t i = 0; i < n; ++i) {
                const std::size_t b = upstream_size(out[i].cls);
                budget.release(b);
                bytes += b;
                return_upstream(out[i].ptr, out[i].cls);
            }
            if (n < chunk) break;
            if (steady_now_ns() >= deadline_ns) finished = false;
        }
    });
    return bytes;
}

// Ages the caches by `elapsed_ticks`: a cache whose state has not changed
// since the last tick grows idler. Returns how many have been unchanged for
// ticks_per_period ticks and hold blocks or reservation.
std::size_t pool_core::count_idle_caches(std::uint32_t elapsed_ticks) noexcept {
    std::size_t idle_caches = 0;
    registry_lock lock;
    for (thread_cache* c = caches; c != nullptr; c = c->next_) {
        const std::uint64_t state = c->state_snapshot();
        if (state != c->last_seen_state_) {
            c->last_seen_state_ = state;
            c->idle_ticks_ = 0;
        } else if (c->idle_ticks_ < ticks_per_period) {
            c->idle_ticks_ += elapsed_ticks < ticks_per_period ? elapsed_ticks : ticks_per_period;
        }
        if (c->idle_ticks_ >= ticks_per_period && (c->count() != 0 || c->reserved() != 0)) ++idle_caches;
    }
    return idle_caches;
}

// A cache that has not changed for ticks_per_period ticks (its thread has
// neither taken nor put a block for a whole period: parked, or busy with
// other work) gives its blocks upstream and its reservation back.
std::size_t pool_core::release_idle_caches(std::size_t idle_caches) noexcept {
    return empty_other_caches(
        [](const thread_cache& c) noexcept {
            return c.idle_ticks_ >= ticks_per_period && (c.count() != 0 || c.reserved() != 0);
        },
        idle_caches);
}

// The other threads' caches that `select` picks (`expected` of them, to size
// the list of blocks; more are left alone) give every block upstream and their
// whole reservation back. Returns the bytes.
template <class Select>
std::size_t pool_core::empty_other_caches(Select&& select, std::size_t expected) noexcept {
    std::vector<cached_block> taken;
    try {
        taken.reserve(expected * thread_cache::max_capacity);
    } catch (...) { // no memory for the list: the caches keep their blocks
        return 0;
    }
    std::size_t emptied = 0;
    reclaim_from_other_caches(select, [&](cache_freeze& f) noexcept {
        if (emptied == expected) { // more caches than the list was sized for
            f.thaw();
            return;
        }
        ++emptied;
        cached_block out[thread_cache::max_capacity];
        const std::uint32_t n = f.take_all(out);
        thread_cache& c = f.cache();
        taken.insert(taken.end(), out, out + n); // within the capacity reserved
        budget.shrink(c, c.reserved());
        f.thaw();
        c.last_seen_state_ = c.state_snapshot(); // emptied here: not a change of its owner's
    });
    std::size_t bytes = 0;
    for (const cached_block& b : taken) {
        bytes += upstream_size(b.cls);
        return_upstream(b.ptr, b.cls);
    }
    return bytes;
}

// ---- a budget shortage -----------------------------------------------------------

bool pool_core::reclaim_unused_reservation() noexcept {
    const std::uint64_t now = coarse_now_ns();
    if (now < next_room_scan_ns_.load(std::memory_order_relaxed)) return false;
    next_room_scan_ns_.store(now + room_scan_interval_ns, std::memory_order_relaxed);
    std::size_t reclaimed = 0;
    reclaim_from_other_caches([](const thread_cache& c) noexcept { return c.reserved() > c.held(); },
                              [&](cache_freeze& f) noexcept {
                                  const std::size_t unused = f.unused_reservation();
                                  budget.shrink(f.cache(), unused);
                                  f.thaw();
                                  reclaimed += unused;
                              });
    return reclaimed != 0;
}

} // namespace zeropool::detail
