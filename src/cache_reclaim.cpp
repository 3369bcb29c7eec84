// zeropool: the reclaimer's side of the handshake with a thread cache's owner
// (src/thread_cache.hpp explains both sides).
#include "cache_reclaim.hpp"

#include "process_barrier.hpp"

#include <chrono>
#include <thread>

namespace zeropool::detail {

void cache_freeze::freeze() noexcept {
    thread_cache& c = *cache_;
    state_ = c.state_.load(std::memory_order_acquire);
    count_ = thread_cache::count_of(state_);
    c.freezes_.store(c.freezes_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    c.frozen_.store(true, std::memory_order_relaxed);
    c.put_limit_.store(0, std::memory_order_relaxed);
    for (std::uint32_t i = 1; i <= count_; ++i) {
        // A compare-exchange, not a store: an operation of the owner that
        // started before the freeze may be moving blocks between slots (take()
        // keeping the age order); a store could put back a class over the
        // one the owner just moved in. When the exchange fails, the owner
        // changed the slot; its operation will commit, check() will see it,
        // and the slots will be frozen again.
        std::uint32_t seen = c.cls_[i].load(std::memory_order_relaxed);
        cls_[i] = seen & ~thread_cache::frozen_bit;
        c.cls_[i].compare_exchange_strong(seen, seen | thread_cache::frozen_bit, std::memory_order_relaxed);
    }
}

cache_freeze::outcome cache_freeze::check() const noexcept {
    const thread_cache& c = *cache_;
    // announce_ first: read after state_, it could belong to an operation that
    // started after another one committed in between, unseen.
    const std::uint64_t announced = c.announce_.load(std::memory_order_acquire);
    if (c.state_.load(std::memory_order_acquire) != state_) return outcome::changed;
    // An operation announced from state_ that has neither committed nor
    // withdrawn may still succeed: wait for it.
    if (announced == state_) return outcome::in_flight;
    // A remember() announced before the freeze may have set a put limit
    // after it; it has withdrawn by now (announce_ moved on), so its store is
    // visible here.
    if (c.put_limit_.load(std::memory_order_relaxed) != 0) return outcome::changed;
    return outcome::quiet;
}

std::uint32_t cache_freeze::take_all(cached_block* out) noexcept {
    thread_cache& c = *cache_;
    for (std::uint32_t i = 1; i <= count_; ++i) {
        out[i - 1] = cached_block{c.ptr_[i].load(std::memory_order_relaxed), cls_[i]};
        ZEROPOOL_UNPOISON_IDLE(out[i - 1].ptr, upstream_size(cls_[i]));
    }
    // The slots keep their frozen classes: they are above the count now. The
    // cache stays frozen (thaw() ends it, restoring no slot).
    c.state_.store(state_ & ~thread_cache::count_mask, std::memory_order_release);
    // That state may equal the start of an operation that committed long ago
    // (a put from an empty cache): forget it, or the next check() would take
    // it for an operation in flight. Nothing the owner announces while the
    // cache is frozen can succeed, so nothing is lost by overwriting it.
    c.announce_.store(thread_cache::no_announcement, std::memory_order_relaxed);
    const std::uint32_t n = count_;
    count_ = 0;
    return n;
}

void cache_freeze::thaw() noexcept {
    thread_cache& c = *cache_;
    // Every mark goes, wherever it is now, from the top slot down. The owner
    // may take a block as soon as its slot is thawed, and a take() moves the
    // blocks above it down one slot, with their classes (so the class under
    // a mark stays right): going down, what it moves comes from slots already
    // thawed, or lands on slots not reached yet. A compare-exchange, so as not
    // to undo a slot the owner just wrote.
    const std::uint32_t count = thread_cache::count_of(c.state_.load(std::memory_order_acquire));
    std::uint32_t last = count > count_ ? count : count_;
    if (last > thread_cache::max_capacity) last = thread_cache::max_capacity;
    for (std::uint32_t i = last; i >= 1; --i) {
        std::uint32_t seen = c.cls_[i].load(std::memory_order_relaxed);
        while ((seen & thread_cache::frozen_bit) != 0 && seen != thread_cache::empty_class &&
               !c.cls_[i].compare_exchange_weak(seen, seen & ~thread_cache::frozen_bit, std::memory_order_relaxed)) {
        }
    }
    c.frozen_.store(false, std::memory_order_release);
}

std::size_t cache_freeze::unused_reservation() const noexcept {
    std::size_t held = 0;
    for (std::uint32_t i = 1; i <= count_; ++i) held += upstream_size(cls_[i]);
    const std::size_t reserved = cache_->reserved();
    return reserved > held ? reserved - held : 0;
}

bool freeze_until_quiet(cache_freeze* caches, std::size_t n, unsigned patience_ms) noexcept {
    for (std::size_t i = 0; i < n; ++i) caches[i].quiet = caches[i].skipped = false;
    if (n == 0) return true;
    if (!process_barrier_available()) return false;
    for (std::size_t i = 0; i < n; ++i) caches[i].freeze();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(patience_ms);
    bool need_barrier = true;
    for (;;) {
        if (need_barrier && !process_barrier()) {
            for (std::size_t i = 0; i < n; ++i) {
                caches[i].thaw();
                caches[i].quiet = false;
            }
            return false;
        }
        need_barrier = false;
        bool pending = false;
        for (std::size_t i = 0; i < n; ++i) {
            cache_freeze& c = caches[i];
            if (c.quiet || c.skipped) continue;
            switch (c.check()) {
            case cache_freeze::outcome::quiet:
                c.quiet = true;
                break;
            case cache_freeze::outcome::in_flight:
                pending = true;
                break;
            case cache_freeze::outcome::changed:
                c.freeze(); // the one operation in flight committed: freeze what it left
                need_barrier = true;
                pending = true;
                break;
            }
        }
        if (!pending) return true;
        if (std::chrono::steady_clock::now() >= deadline) {
            for (std::size_t i = 0; i < n; ++i) {
                cache_freeze& c = caches[i];
                if (c.quiet || c.skipped) continue;
                c.thaw();
                c.skipped = true;
            }
            return true;
        }
        if (!need_barrier) std::this_thread::yield(); // an owner is mid-operation: let it finish
    }
}

} // namespace zeropool::detail
