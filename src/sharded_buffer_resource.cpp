// zeropool: the routing of sharded_buffer_resource: the hit paths, the
// classified paths, and the pool's construction and destruction. The tiers
// below the hit paths live in pool_core (src/pool_core.hpp).
//
// Who touches what:
//   id_, config_, core_   immutable after construction; core_ documents its own.
//
// Hit paths (do_allocate / do_deallocate when the calling thread's cache
// serves the request) take no lock, do no atomic read-modify-write and call
// nothing out of line (but a tail call every few thousand hits): one TLS
// compare, the memo of the last request, one slot, and the store that
// announces the operation to a reclaimer (src/thread_cache.hpp).
//
// The tiers hold block starts. A request's data starts data_offset(class,
// alignment) bytes into its block (16 bytes for alignments <= 16 in blocks of
// 64 KiB and more, else 0); the paths here add it and take it off.
#include <zeropool/sharded_buffer_resource.hpp>

#include <zeropool/detail/size_class.hpp>

#include "asan.hpp"
#include "fitted_block.hpp"
#include "pool_core.hpp"
#include "thread_cache.hpp"
#include "thread_registry.hpp"

#include <cstdint>
#include <new>
#include <stdexcept>

namespace zeropool {

sharded_buffer_resource::sharded_buffer_resource() : sharded_buffer_resource(pool_config{}) {}

sharded_buffer_resource::sharded_buffer_resource(std::pmr::memory_resource* upstream)
    : sharded_buffer_resource(pool_config{}, upstream) {}

sharded_buffer_resource::sharded_buffer_resource(const pool_config& config,
                                                 std::pmr::memory_resource* upstream)
    : id_(detail::new_pool_id()), config_(normalize(config)) {
    if (upstream == nullptr)
        throw std::invalid_argument("zeropool::sharded_buffer_resource: null upstream resource");
    core_ = std::make_unique<detail::pool_core>(id_, config_, upstream);
}

// pool_core's destructor returns every idle block, other threads' caches
// included, upstream.
sharded_buffer_resource::~sharded_buffer_resource() = default;

std::pmr::memory_resource* sharded_buffer_resource::upstream_resource() const noexcept {
    return core_->upstream.resource();
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
            bool check_clock = false;
            if (void* block = cache->take_newest(m.cls, check_clock)) {
                void* const p = static_cast<std::byte*>(block) + m.offset;
                // Every few thousand hits, release by demand may be due: a
                // tail call, so the hit path keeps no frame.
                if (ZEROPOOL_UNLIKELY(check_clock)) return core_->release_idle_and_return(p);
                return p;
            }
        }
    }
    return allocate_classified(bytes, alignment);
}

void sharded_buffer_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
    if (detail::thread_cache* cache = detail::find_cache_mru(id_)) {
        if (ZEROPOOL_LIKELY(cache->memo_matches(bytes, alignment))) {
            const detail::thread_cache::request_memo& m = cache->memo();
            void* block = static_cast<std::byte*>(p) - m.offset;
            // A fitted block (src/fitted_block.hpp) is told by its address
            // and takes the classified path.
            if (ZEROPOOL_LIKELY((reinterpret_cast<std::uintptr_t>(block) & m.exact_mask) == 0) &&
                ZEROPOOL_LIKELY(cache->try_put(block, m.cls)))
                return;
        }
    }
    deallocate_classified(p, bytes, alignment);
}

// Pooled: max(bytes, alignment) in [min_buffer_size, max_buffer_size] and a
// power-of-two alignment up to page_alignment. The one test of it.
bool sharded_buffer_resource::is_pooled(std::size_t bytes, std::size_t alignment) const noexcept {
    const std::size_t s = detail::classified_size(bytes, alignment);
    return s >= config_.min_buffer_size && s <= config_.max_buffer_size &&
           alignment <= detail::page_alignment && detail::is_power_of_two(alignment);
}

void* sharded_buffer_resource::allocate_classified(std::size_t bytes, std::size_t alignment) {
    if (ZEROPOOL_LIKELY(is_pooled(bytes, alignment))) {
        const detail::size_class_info c = detail::classify(detail::classified_size(bytes, alignment));
        const std::size_t offset = detail::data_offset(c.size, alignment);
        detail::cached_block block{nullptr, c.index};
        detail::thread_cache* cache = core_->own_cache();
        if (cache != nullptr) block.ptr = cache->take(c.index);
        if (block.ptr == nullptr) {
            const bool loop = cache != nullptr && cache->fit_cycled(c.index);
            const detail::fit_range fit = loop ? detail::no_fit : fit_range(c.index, bytes, alignment);
            block = core_->allocate_block(cache, c.index, fit); // may throw: nothing changed
        }
        if (cache != nullptr) cache->remember(bytes, alignment, c.index, c.upstream, offset);
        if (ZEROPOOL_UNLIKELY(block.cls != c.index)) {
            if (cache != nullptr) cache->note_fit(c.index);
            return hand_out_fitted(cache, block, bytes, alignment);
        }
        return static_cast<std::byte*>(block.ptr) + offset;
    }
    // Not pooled: straight upstream, with its own size and alignment.
    if (bytes > detail::max_request || !detail::is_power_of_two(alignment)) throw std::bad_alloc();
    return core_->upstream.allocate(bytes == 0 ? 1 : bytes, alignment);
}

void sharded_buffer_resource::deallocate_classified(void* p, std::size_t bytes,
                                                    std::size_t alignment) noexcept {
    if (ZEROPOOL_LIKELY(is_pooled(bytes, alignment))) {
        const detail::size_class_info c = detail::classify(detail::classified_size(bytes, alignment));
        const std::size_t offset = detail::data_offset(c.size, alignment);
        void* block = static_cast<std::byte*>(p) - offset;
        if (ZEROPOOL_UNLIKELY(detail::is_fitted(block, c.index))) {
            take_back_fitted(p, bytes, alignment, c.index);
            return;
        }
        detail::thread_cache* cache = core_->own_cache();
        if (cache != nullptr) {
            cache->remember(bytes, alignment, c.index, c.upstream, offset);
            if (cache->try_put(block, c.index)) return;
        }
        core_->deallocate_block(cache, block, c.index);
        return;
    }
    core_->upstream.deallocate(p, bytes == 0 ? 1 : bytes, alignment);
}

// ---- fit ---------------------------------------------------------------------------

detail::fit_range sharded_buffer_resource::fit_range(std::uint32_t cls, std::size_t bytes,
                                                     std::size_t alignment) const noexcept {
    const std::size_t classes = config_.max_fit_classes == pool_config::exact_classes_only ? 0 : config_.max_fit_classes;
    return detail::fit_range_for(cls, bytes, alignment, static_cast<std::uint32_t>(classes));
}

// The data of a fitted block starts fit_offset(alignment) bytes in, past its
// header; the bytes before the data are poisoned for AddressSanitizer while
// the block is handed out, so an underflow of the buffer is reported.
void* sharded_buffer_resource::hand_out_fitted(detail::thread_cache* cache, detail::cached_block block,
                                               std::size_t bytes, std::size_t alignment) noexcept {
    detail::write_fitted_header(block.ptr, block.cls);
    const std::size_t offset = detail::fit_offset(alignment);
    ZEROPOOL_POISON_IDLE(block.ptr, offset);
    core_->count_fitted(cache, block.cls, bytes);
    return static_cast<std::byte*>(block.ptr) + offset;
}

// A deallocate whose pointer is not where an exact block of the request's
// class puts its data: a fitted block, whose header says its class. A header
// this pool did not write means the pointer, size or alignment differs from
// the allocation's: the documented outcome is an abort with a message, never
// a block returned under a wrong class.
void sharded_buffer_resource::take_back_fitted(void* p, std::size_t bytes, std::size_t alignment,
                                               std::uint32_t request_cls) noexcept {
    const std::size_t offset = detail::fit_offset(alignment);
    void* block = static_cast<std::byte*>(p) - offset;
    ZEROPOOL_UNPOISON_IDLE(block, offset);
    const std::uint32_t cls = detail::read_fitted_header(block);
    if (cls == detail::not_fitted || cls <= request_cls || detail::class_size(cls) < offset + bytes)
        detail::bad_deallocate("deallocate of a pointer that this pool did not allocate with that size and alignment");
    detail::thread_cache* cache = core_->own_cache();
    if (cache != nullptr) cache->note_fit_returned(request_cls);
    core_->deallocate_fitted(cache, block, cls, bytes);
}

bool sharded_buffer_resource::do_is_equal(const std::pmr::memory_resource& other) const noexcept {
    return this == &other;
}

} // namespace zeropool
