// zeropool: routing between the tiers of sharded_buffer_resource.
//
// Who touches what (the tiers document their own fields):
//   id_, min_pooled_, max_pooled_, thread_cache_limit_, config_, upstream_
//       immutable after construction.
//   shards_[i]      atomic pointer, null until the shard is first needed;
//       created under the registry mutex (so the fork handler sees a stable
//       set), read with acquire loads. Each shard guards itself.
//   reserved_bytes_ atomic: bytes of the idle-byte budget held by the shards
//       (the bytes they hold) plus every thread cache's reservation. Grows
//       only by a compare-exchange that keeps it <= max_cached_bytes, so idle
//       bytes never exceed the cap.
//   upstream_allocations_, upstream_deallocations_   relaxed atomic counters,
//       bumped after an upstream call succeeds (a failed call changes nothing).
//   handle_         the registry's view of the pool (thread_registry.hpp).
//
// Hit paths (do_allocate / do_deallocate when the calling thread's cache
// serves the request) take no lock, do no atomic read-modify-write and call
// nothing out of line: classify, one TLS load, scan a few slots.
//
// The tiers hold block starts. A request's data starts data_offset(class,
// alignment) bytes into its block (16 bytes for alignments <= 16 in blocks of
// 64 KiB and more, else 0); do_allocate adds it and do_deallocate takes it off.
#include <zeropool/sharded_buffer_resource.hpp>

#include <zeropool/page_resource.hpp> // page_resource::page_size()

#include "shard.hpp"
#include <zeropool/detail/size_class.hpp>
#include "thread_cache.hpp"
#include "thread_registry.hpp"

#include <cstdint>
#include <limits>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

namespace zeropool {

using detail::cached_block;
using detail::class_index;
using detail::block_alignment;

namespace {

/// Larger requests can never be satisfied; refusing them up front keeps every
/// size computation below free of wrap-around.
constexpr std::size_t max_request = std::numeric_limits<std::size_t>::max() / 2;

/// Writes one byte in every page of [p, p + bytes), so that the kernel maps
/// them now rather than on first use (a fresh 4 KiB page costs 10-14 us to
/// fault in on our VMs). The content of an idle block is unspecified anyway.
void fault_in(void* p, std::size_t bytes) noexcept {
    auto* const first = static_cast<volatile unsigned char*>(p);
    const std::size_t page = page_resource::page_size();
    const auto start = reinterpret_cast<std::uintptr_t>(p);
    for (std::size_t off = (page - start % page) % page; off < bytes; off += page) first[off] = 0;
    if (bytes != 0) first[0] = 0; // the partial page at the start, if any
}

} // namespace

sharded_buffer_resource::sharded_buffer_resource() : sharded_buffer_resource(pool_config{}) {}

sharded_buffer_resource::sharded_buffer_resource(const pool_config& config,
                                                 std::pmr::memory_resource* upstream)
    : id_(detail::new_pool_id()),
      config_(normalize(config)),
      upstream_(upstream) {
    if (upstream_ == nullptr)
        throw std::invalid_argument("zeropool::sharded_buffer_resource: null upstream resource");
    min_pooled_ = config_.min_buffer_size;
    max_pooled_ = config_.max_buffer_size;
    thread_cache_limit_ = config_.max_cached_bytes / 4;
    shards_ = std::make_unique<std::atomic<detail::shard*>[]>(config_.num_shards);
    handle_ = std::make_unique<detail::pool_handle>();
    handle_->owner = this;
    handle_->id = id_;
    handle_->flush_exiting = &flush_exiting_thread;
    handle_->lock_for_fork = &lock_for_fork;
    handle_->unlock_after_fork = &unlock_after_fork;
    detail::register_pool(*handle_);
}

sharded_buffer_resource::~sharded_buffer_resource() {
    // 1. Take the blocks out of every thread cache of this pool, under the
    //    registry mutex (no upstream call there), then wait for exiting
    //    threads that are handing blocks back to the shards.
    struct drained {
        sharded_buffer_resource* self;
        std::vector<cached_block> blocks;
    } out{this, {}};
    detail::unregister_pool(
        *handle_,
        [](void* context, detail::thread_cache& cache) noexcept {
            auto& d = *static_cast<drained*>(context);
            while (!cache.empty()) {
                const cached_block b = cache.pop_oldest(detail::upstream_size(cache.oldest_class()));
                try {
                    d.blocks.push_back(b);
                } catch (...) { // no memory to defer: return it right here
                    d.self->return_block_upstream(b.ptr, b.cls);
                }
            }
        },
        &out);
    // 2. Everything idle goes upstream.
    for (const cached_block& b : out.blocks) return_block_upstream(b.ptr, b.cls);
    for (std::size_t i = 0; i < config_.num_shards; ++i) {
        detail::shard* s = shards_[i].load(std::memory_order_acquire);
        if (s == nullptr) continue;
        cached_block b{};
        while (s->take_any(b)) return_block_upstream(b.ptr, b.cls);
        delete s;
    }
}

// ---- hit paths ---------------------------------------------------------------

// The hit paths: the thread's cache of this pool, and its memo of the last
// request (a loop asking for one size skips the classification). Anything
// else takes the classified paths, out of line.
void* sharded_buffer_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
    if (detail::thread_cache* cache = detail::find_cache_mru(id_)) {
        if (ZEROPOOL_LIKELY(cache->memo_matches(bytes, alignment))) {
            const detail::thread_cache::request_memo& m = cache->memo();
            // The newest block only: the rest of take() is out of line, so
            // this path needs no call and no saved register.
            if (void* block = cache->take_newest(m.cls, m.upstream))
                return static_cast<std::byte*>(block) + m.offset;
        }
    }
    return allocate_classified(bytes, alignment);
}

void sharded_buffer_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
    if (detail::thread_cache* cache = detail::find_cache_mru(id_)) {
        if (ZEROPOOL_LIKELY(cache->memo_matches(bytes, alignment))) {
            const detail::thread_cache::request_memo& m = cache->memo();
            void* block = static_cast<std::byte*>(p) - m.offset;
            if (ZEROPOOL_LIKELY(cache->try_put(block, m.cls, m.upstream))) return;
        }
    }
    deallocate_classified(p, bytes, alignment);
}

void* sharded_buffer_resource::allocate_classified(std::size_t bytes, std::size_t alignment) {
    const std::size_t s = detail::classified_size(bytes, alignment);
    if (ZEROPOOL_LIKELY(s >= min_pooled_ && s <= max_pooled_ &&
                        alignment <= detail::page_alignment &&
                        detail::is_power_of_two(alignment))) {
        const detail::size_class_info c = detail::classify(s);
        const std::size_t offset = detail::data_offset(c.size, alignment);
        void* block = nullptr;
        detail::thread_cache* cache = detail::find_cache_fast(id_);
        if (cache != nullptr) block = cache->take(c.index, c.upstream);
        if (block == nullptr) {
            block = allocate_slow(c.index); // may throw: nothing changed
            if (cache == nullptr) cache = detail::find_cache_fast(id_); // allocate_slow may create it
        }
        if (cache != nullptr) cache->remember(bytes, alignment, c.index, c.upstream, offset);
        return static_cast<std::byte*>(block) + offset;
    }
    return allocate_upstream(bytes, alignment);
}

void sharded_buffer_resource::deallocate_classified(void* p, std::size_t bytes,
                                                    std::size_t alignment) noexcept {
    const std::size_t s = detail::classified_size(bytes, alignment);
    if (ZEROPOOL_LIKELY(s >= min_pooled_ && s <= max_pooled_ &&
                        alignment <= detail::page_alignment &&
                        detail::is_power_of_two(alignment))) {
        const detail::size_class_info c = detail::classify(s);
        const std::size_t offset = detail::data_offset(c.size, alignment);
        void* block = static_cast<std::byte*>(p) - offset;
        detail::thread_cache* cache = detail::find_cache_fast(id_);
        if (cache != nullptr) {
            cache->remember(bytes, alignment, c.index, c.upstream, offset);
            if (cache->try_put(block, c.index, c.upstream)) return;
        }
        deallocate_slow(block, c.index);
        return;
    }
    deallocate_upstream(p, bytes, alignment);
}

bool sharded_buffer_resource::do_is_equal(const std::pmr::memory_resource& other) const noexcept {
    return this == &other;
}

// ---- slow paths ------------------------------------------------------------------

void* sharded_buffer_resource::allocate_slow(std::uint32_t cls) {
    const std::size_t bytes = detail::upstream_size(cls);
    auto capacity = static_cast<std::uint32_t>(config_.tls_cache_size);
    detail::thread_cache* cache = detail::find_or_create_cache(*handle_, capacity);
    if (cache != nullptr) {
        if (void* p = cache->take(cls, bytes)) return p;
        if (void* p = refill_from_shards(*cache, cls, cache->repeated_miss(cls))) return p;
    } else if (void* p = take_from_shards(cls)) {
        unreserve(bytes);
        return p;
    }
    void* p = upstream_->allocate(detail::upstream_size(cls), block_alignment(cls)); // may throw: nothing changed
    upstream_allocations_.fetch_add(1, std::memory_order_relaxed);
    return p;
}

void sharded_buffer_resource::deallocate_slow(void* p, std::uint32_t cls) noexcept {
    const std::size_t bytes = detail::upstream_size(cls);
    auto capacity = static_cast<std::uint32_t>(config_.tls_cache_size);
    if (detail::thread_cache* cache = detail::find_or_create_cache(*handle_, capacity)) {
        if (cache->try_put(p, cls, bytes)) return;
        if (bytes <= thread_cache_limit_) {
            cache_block_slow(*cache, p, cls);
            return;
        }
    }
    release_block(p, cls, false);
}

// The cache is full, or its reservation does not cover the block: move its
// oldest blocks to the shards until the block fits the cache's share (when
// the cache is full, half of it: one shard lock then serves several frees, as
// when one thread frees what another allocates), then grow the reservation
// from the pool's budget.
void sharded_buffer_resource::cache_block_slow(detail::thread_cache& cache, void* p,
                                               std::uint32_t cls) noexcept {
    const std::size_t bytes = detail::upstream_size(cls);
    cached_block moving[detail::thread_cache::max_capacity];
    std::uint32_t n = 0;
    const std::uint32_t keep = cache.full() ? cache.count() / 2 : cache.count();
    while (!cache.empty() && (cache.count() > keep || cache.held() + bytes > thread_cache_limit_)) {
        const std::size_t oldest_bytes = detail::upstream_size(cache.oldest_class());
        moving[n++] = cache.pop_oldest(oldest_bytes);
        cache.set_reserved(cache.reserved() - oldest_bytes); // its budget moves with it
    }
    if (n != 0) release_blocks(moving, n);
    const std::size_t wanted = cache.held() + bytes;
    const std::size_t need = wanted > cache.reserved() ? wanted - cache.reserved() : 0;
    if (need == 0 || try_reserve(need)) {
        cache.set_reserved(cache.reserved() + need);
        cache.push(p, cls, bytes);
        return;
    }
    release_block(p, cls, false);
}

void* sharded_buffer_resource::take_from_shards(std::uint32_t cls) noexcept {
    const std::size_t n = config_.num_shards;
    const std::size_t home = home_shard();
    for (std::size_t k = 0; k < n; ++k) {
        detail::shard* s = shards_[(home + k) & (n - 1)].load(std::memory_order_acquire);
        if (s == nullptr || s->probably_empty()) continue;
        if (void* p = s->take(cls)) return p;
    }
    return nullptr;
}

bool sharded_buffer_resource::give_to_shards(void* p, std::uint32_t cls, bool budget_held) noexcept {
    const std::size_t bytes = detail::upstream_size(cls);
    if (!budget_held && !try_reserve(bytes)) return false;
    const std::size_t n = config_.num_shards;
    const std::size_t home = home_shard();
    for (std::size_t k = 0; k < n; ++k) {
        const std::size_t i = (home + k) & (n - 1);
        detail::shard* s = shard_at(i); // created on first need: every shard adds room
        if (s == nullptr || (k != 0 && s->probably_full())) continue;
        if (s->push(p, cls)) return true;
    }
    unreserve(bytes);
    return false;
}

void sharded_buffer_resource::release_block(void* p, std::uint32_t cls, bool budget_held) noexcept {
    if (!give_to_shards(p, cls, budget_held)) return_block_upstream(p, cls);
}

// Blocks whose budget is held: to the shards, the home shard first, one lock
// per shard; what no shard has room for goes upstream with its budget.
void sharded_buffer_resource::release_blocks(const cached_block* blocks, std::uint32_t n) noexcept {
    const std::size_t shards = config_.num_shards;
    const std::size_t home = home_shard();
    std::uint32_t done = 0;
    for (std::size_t k = 0; k < shards && done < n; ++k) {
        detail::shard* s = shard_at((home + k) & (shards - 1));
        if (s == nullptr || (k != 0 && s->probably_full())) continue;
        done += s->push_batch(blocks + done, n - done);
    }
    for (; done < n; ++done) {
        unreserve(detail::upstream_size(blocks[done].cls));
        return_block_upstream(blocks[done].ptr, blocks[done].cls);
    }
}

// A thread cache missed class `cls`: take a block of it from the shards and,
// when `batch` (the cache's previous miss was of this class too), under the
// same lock up to as many more as the cache has slots and byte share for
// (they move in with their budget), so that the next allocations of the
// class hit the cache. Returns the block to serve, or nullptr.
void* sharded_buffer_resource::refill_from_shards(detail::thread_cache& cache, std::uint32_t cls,
                                                  bool batch) noexcept {
    const std::size_t bytes = detail::upstream_size(cls);
    std::uint32_t extra = 0;
    if (batch) {
        const std::size_t share = thread_cache_limit_ > cache.held() ? thread_cache_limit_ - cache.held() : 0;
        const std::size_t by_bytes = share / bytes;
        extra = by_bytes < cache.free_slots() ? static_cast<std::uint32_t>(by_bytes) : cache.free_slots();
    }
    void* got[detail::thread_cache::max_capacity + 1];
    const std::size_t n = config_.num_shards;
    const std::size_t home = home_shard();
    for (std::size_t k = 0; k < n; ++k) {
        detail::shard* s = shards_[(home + k) & (n - 1)].load(std::memory_order_acquire);
        if (s == nullptr || s->probably_empty()) continue;
        const std::uint32_t taken = s->take_batch(cls, got, extra + 1);
        if (taken == 0) continue;
        // got[0] is served: it leaves the idle budget. The others fill the
        // cache's unused reservation first (their budget is then released),
        // and bring the rest of their budget with them, so the reservation
        // stays <= thread_cache_limit_ (held + extra * bytes is).
        const std::size_t room = cache.reserved() - cache.held();
        const std::uint32_t moved = taken - 1;
        const std::uint32_t covered = room / bytes < moved ? static_cast<std::uint32_t>(room / bytes) : moved;
        unreserve(bytes * (1 + std::size_t{covered}));
        cache.set_reserved(cache.reserved() + bytes * (moved - covered));
        for (std::uint32_t i = 1; i < taken; ++i) cache.push(got[i], cls, bytes);
        return got[0];
    }
    return nullptr;
}

void sharded_buffer_resource::return_block_upstream(void* p, std::uint32_t cls) noexcept {
    upstream_->deallocate(p, detail::upstream_size(cls), block_alignment(cls));
    upstream_deallocations_.fetch_add(1, std::memory_order_relaxed);
}

void* sharded_buffer_resource::allocate_upstream(std::size_t bytes, std::size_t alignment) {
    if (bytes > max_request || !detail::is_power_of_two(alignment)) throw std::bad_alloc();
    void* p = upstream_->allocate(bytes == 0 ? 1 : bytes, alignment);
    upstream_allocations_.fetch_add(1, std::memory_order_relaxed);
    return p;
}

void sharded_buffer_resource::deallocate_upstream(void* p, std::size_t bytes,
                                                  std::size_t alignment) noexcept {
    upstream_->deallocate(p, bytes == 0 ? 1 : bytes, alignment);
    upstream_deallocations_.fetch_add(1, std::memory_order_relaxed);
}

// Empties `cache`: its blocks go to the shards (or upstream beyond the caps),
// or all straight upstream; its whole reservation goes back to the budget.
void sharded_buffer_resource::empty_cache(detail::thread_cache& cache, bool to_upstream) noexcept {
    while (!cache.empty()) {
        const std::size_t oldest_bytes = detail::upstream_size(cache.oldest_class());
        const cached_block b = cache.pop_oldest(oldest_bytes);
        cache.set_reserved(cache.reserved() - oldest_bytes);
        if (to_upstream) {
            unreserve(oldest_bytes);
            return_block_upstream(b.ptr, b.cls);
        } else {
            release_block(b.ptr, b.cls, true);
        }
    }
    unreserve(cache.reserved());
    cache.set_reserved(0);
}

detail::shard* sharded_buffer_resource::shard_at(std::size_t index) noexcept {
    if (detail::shard* s = shards_[index].load(std::memory_order_acquire)) return s;
    struct request {
        sharded_buffer_resource* self;
        std::size_t index;
    } r{this, index};
    detail::with_registry_locked(
        [](void* context) noexcept {
            auto& req = *static_cast<request*>(context);
            std::atomic<detail::shard*>& slot = req.self->shards_[req.index];
            if (slot.load(std::memory_order_relaxed) != nullptr) return;
            try {
                slot.store(new detail::shard(static_cast<std::uint32_t>(
                               req.self->config_.max_buffers_per_shard)),
                           std::memory_order_release);
            } catch (...) { // no memory: the caller goes on without this shard
            }
        },
        &r);
    return shards_[index].load(std::memory_order_acquire);
}

std::size_t sharded_buffer_resource::home_shard() const noexcept {
    return detail::thread_index() & (config_.num_shards - 1);
}

bool sharded_buffer_resource::try_reserve(std::size_t bytes) noexcept {
    const std::size_t cap = config_.max_cached_bytes;
    std::size_t used = reserved_bytes_.load(std::memory_order_relaxed);
    do {
        if (bytes > cap - used) return false;
    } while (!reserved_bytes_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
    return true;
}

void sharded_buffer_resource::unreserve(std::size_t bytes) noexcept {
    if (bytes != 0) reserved_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
}

// ---- registry callbacks ------------------------------------------------------------

void sharded_buffer_resource::flush_exiting_thread(detail::pool_handle& handle,
                                                   detail::thread_cache& cache) noexcept {
    static_cast<sharded_buffer_resource*>(handle.owner)->empty_cache(cache, false);
}

void sharded_buffer_resource::lock_for_fork(detail::pool_handle& handle) noexcept {
    auto& self = *static_cast<sharded_buffer_resource*>(handle.owner);
    for (std::size_t i = 0; i < self.config_.num_shards; ++i)
        if (detail::shard* s = self.shards_[i].load(std::memory_order_acquire)) s->lock();
}

void sharded_buffer_resource::unlock_after_fork(detail::pool_handle& handle, bool) noexcept {
    auto& self = *static_cast<sharded_buffer_resource*>(handle.owner);
    for (std::size_t i = self.config_.num_shards; i-- > 0;)
        if (detail::shard* s = self.shards_[i].load(std::memory_order_acquire)) s->unlock();
}

// ---- extensions -----------------------------------------------------------------

void sharded_buffer_resource::preallocate(std::size_t count, std::size_t size) {
    const std::size_t s = detail::classified_size(size, 1);
    if (s < min_pooled_ || s > max_pooled_) return;
    const std::uint32_t cls = class_index(s);
    const std::size_t bytes = detail::upstream_size(cls);
    const std::size_t n = config_.num_shards;
    const std::size_t home = home_shard();
    for (std::size_t i = 0; i < count; ++i) {
        if (!try_reserve(bytes)) return;
        void* p = nullptr;
        try {
            p = upstream_->allocate(detail::upstream_size(cls), block_alignment(cls));
        } catch (...) {
            unreserve(bytes);
            throw;
        }
        upstream_allocations_.fetch_add(1, std::memory_order_relaxed);
        fault_in(p, bytes);
        bool kept = false;
        for (std::size_t k = 0; k < n && !kept; ++k) { // spread over the shards
            detail::shard* sh = shard_at((home + i + k) & (n - 1));
            kept = sh != nullptr && sh->push(p, cls);
        }
        if (!kept) {
            unreserve(bytes);
            return_block_upstream(p, cls);
            return;
        }
    }
}

void sharded_buffer_resource::trim() noexcept {
    if (detail::thread_cache* cache = detail::find_cache(*handle_)) empty_cache(*cache, true);
    for (std::size_t i = 0; i < config_.num_shards; ++i) {
        detail::shard* s = shards_[i].load(std::memory_order_acquire);
        if (s == nullptr) continue;
        cached_block b{};
        while (s->take_any(b)) {
            unreserve(detail::upstream_size(b.cls));
            return_block_upstream(b.ptr, b.cls);
        }
    }
}

pool_stats sharded_buffer_resource::stats() const noexcept {
    pool_stats st;
    const std::uint64_t retired_hits = detail::visit_caches(
        *handle_,
        [](void* context, const detail::thread_cache& cache) noexcept {
            auto& out = *static_cast<pool_stats*>(context);
            out.thread_cache_hits += cache.hits();
            out.cached_buffers += cache.published_count();
            out.cached_bytes += cache.published_held();
        },
        &st);
    st.thread_cache_hits += retired_hits;
    for (std::size_t i = 0; i < config_.num_shards; ++i) {
        detail::shard* s = shards_[i].load(std::memory_order_acquire);
        if (s == nullptr) continue;
        const detail::shard::snapshot snap = s->read();
        st.shard_hits += snap.hits;
        st.cached_bytes += snap.bytes;
        st.cached_buffers += snap.blocks;
    }
    st.reserved_bytes = reserved_bytes_.load(std::memory_order_relaxed);
    st.upstream_allocations = upstream_allocations_.load(std::memory_order_relaxed);
    st.upstream_deallocations = upstream_deallocations_.load(std::memory_order_relaxed);
    return st;
}

} // namespace zeropool
