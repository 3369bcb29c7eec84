// zeropool: the shards of one pool: created on first need, searched from the
// calling thread's home shard, locked around fork().
//
// Who touches what:
//   shards_[i]   atomic pointer, null until the shard is first needed;
//       created under create_mutex_ (so the fork handler, which takes
//       create_mutex_ first, sees a stable set), read with acquire loads.
//       Each shard guards itself.
//   create_mutex_   taken to create a shard, and by lock_all() before fork().
//
// Lock order: the registry mutex, then create_mutex_, then a shard's mutex.
#ifndef ZEROPOOL_SRC_SHARD_SET_HPP
#define ZEROPOOL_SRC_SHARD_SET_HPP

#include "shard.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace zeropool::detail {

class shard_set {
public:
    /// `count` shards (a power of two) of `shard_capacity` blocks each; none
    /// is created yet. Throws: std::bad_alloc.
    shard_set(std::size_t count, std::uint32_t shard_capacity)
        : shards_(std::make_unique<std::atomic<shard*>[]>(count)), count_(count), capacity_(shard_capacity) {}

    /// Frees the shards; they must hold no block (the pool empties them first).
    ~shard_set() {
        for (std::size_t i = 0; i < count_; ++i) delete shards_[i].load(std::memory_order_relaxed);
    }

    shard_set(const shard_set&) = delete;
    shard_set& operator=(const shard_set&) = delete;

    std::size_t size() const noexcept { return count_; }

    /// The home shard of the thread with index `thread_index`.
    std::size_t home(std::uint32_t thread_index) const noexcept { return thread_index & (count_ - 1); }

    /// Calls `f(shard&, k)` on the existing shards, starting at `first` and
    /// wrapping (k = 0 for `first`, 1 for the next, ...), until f returns
    /// true. Returns whether one did.
    template <class F>
    bool any_existing_from(std::size_t first, F&& f) const noexcept {
        for (std::size_t k = 0; k < count_; ++k) {
            shard* s = shards_[(first + k) & (count_ - 1)].load(std::memory_order_acquire);
            if (s != nullptr && f(*s, k)) return true;
        }
        return false;
    }

    /// As any_existing_from, creating the shards not created yet on the way
    /// (every shard adds room); a shard that cannot be allocated is skipped.
    template <class F>
    bool any_from(std::size_t first, F&& f) noexcept {
        for (std::size_t k = 0; k < count_; ++k) {
            shard* s = get_or_create((first + k) & (count_ - 1));
            if (s != nullptr && f(*s, k)) return true;
        }
        return false;
    }

    /// Calls `f(shard&)` on every existing shard.
    template <class F>
    void for_each(F&& f) const noexcept {
        for (std::size_t i = 0; i < count_; ++i)
            if (shard* s = shards_[i].load(std::memory_order_acquire)) f(*s);
    }

    /// Takes create_mutex_ and every shard's mutex, for fork().
    void lock_all() noexcept {
        create_mutex_.lock();
        for_each([](shard& s) noexcept { s.lock(); });
    }

    /// Releases what lock_all() took.
    void unlock_all() noexcept {
        for (std::size_t i = count_; i-- > 0;)
            if (shard* s = shards_[i].load(std::memory_order_acquire)) s->unlock();
        create_mutex_.unlock();
    }

private:
    shard* get_or_create(std::size_t i) noexcept {
        if (shard* s = shards_[i].load(std::memory_order_acquire)) return s;
        std::lock_guard<std::mutex> lock(create_mutex_);
        if (shard* s = shards_[i].load(std::memory_order_relaxed)) return s;
        try {
            shard* created = new shard(capacity_);
            shards_[i].store(created, std::memory_order_release);
            return created;
        } catch (...) { // no memory: the caller goes on without this shard
            return nullptr;
        }
    }

    std::unique_ptr<std::atomic<shard*>[]> shards_;
    std::size_t count_;
    std::uint32_t capacity_;
    std::mutex create_mutex_;
};

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_SHARD_SET_HPP
