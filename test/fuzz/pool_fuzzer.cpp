// libFuzzer harness for zeropool::sharded_buffer_resource.
//
// Each input is decoded into a pool configuration (fit bound included) and a sequence of
// operations: allocate(size, alignment), deallocate, get(size), put, rewrite
// (new contents), trim, stats, and switch-thread. Operations run on the
// current thread: the fuzzer's own or one of three worker threads that run
// one step at a time on request, so an input always executes the same way.
// Checked after every step and at the end of each input:
//   - contents: every live block carries a pattern derived from its address
//     and a generation, compared before it is freed or rewritten;
//   - alignment of every block handed out;
//   - accounting: a recording upstream checks every upstream call (known
//     pointer, same size and alignment as allocated, no double free); the
//     pool's counters equal the upstream's calls; the upstream's outstanding
//     blocks and bytes equal the pool's idle blocks and bytes plus the live
//     blocks the harness holds (a fitted one counted as the upstream block
//     it lies in, which must be of a class within the fit bound); the fit
//     counters equal the harness's own; cached <= reserved <= max_cached_bytes;
//   - at the end of each input every block is freed, the pool destroyed, and
//     the upstream must be balanced (nothing outstanding, no bad call).
// A failed check prints what failed and aborts (libFuzzer saves the input).
//
// Built and run by test/fuzz/run_fuzz.sh.
#include <zeropool/detail/size_class.hpp>
#include <zeropool/sharded_buffer_resource.hpp>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory_resource>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <sanitizer/allocator_interface.h>

#include "../pattern.hpp"

namespace {

namespace zp = zeropool;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "pool_fuzzer: check failed: %s\n", what);
    std::abort();
}

void check(bool ok, const char* what) {
    if (!ok) fail(what);
}

// ---- contents -------------------------------------------------------------------------

using zeropool_test::pattern_word;

/// Every byte of the first and last 512 bytes, one byte per 1 KiB between
/// them: every page is touched, at a bounded cost per block.
template <typename F>
void for_pattern_bytes(std::size_t bytes, F&& f) {
    constexpr std::size_t edge = 512;
    if (bytes <= 2 * edge) {
        for (std::size_t i = 0; i < bytes; ++i) f(i);
        return;
    }
    for (std::size_t i = 0; i < edge; ++i) f(i);
    for (std::size_t i = edge; i < bytes - edge; i += 1024) f(i);
    for (std::size_t i = bytes - edge; i < bytes; ++i) f(i);
}

unsigned char pattern_byte(const void* p, std::size_t i, std::uint64_t gen) noexcept {
    return static_cast<unsigned char>(pattern_word(p, i / 8, gen) >> (8 * (i % 8)));
}

void fill(void* p, std::size_t bytes, std::uint64_t gen) {
    auto* b = static_cast<unsigned char*>(p);
    for_pattern_bytes(bytes, [&](std::size_t i) { b[i] = pattern_byte(p, i, gen); });
}

bool intact(const void* p, std::size_t bytes, std::uint64_t gen) {
    const auto* b = static_cast<const unsigned char*>(p);
    bool ok = true;
    for_pattern_bytes(bytes, [&](std::size_t i) { ok = ok && b[i] == pattern_byte(p, i, gen); });
    return ok;
}

// ---- a checking upstream ----------------------------------------------------------------

/// Records every live block; aborts on any call that breaks the contract.
/// Used from one thread at a time (the steps run one after another), but
/// locked anyway: the pool's destructor and thread exits may call it.
class recording_upstream final : public std::pmr::memory_resource {
public:
    std::size_t allocations() const { return guarded(allocations_); }
    std::size_t deallocations() const { return guarded(deallocations_); }
    std::size_t outstanding_bytes() const { return guarded(outstanding_bytes_); }
    std::size_t outstanding_blocks() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return live_.size();
    }
    /// The size of the live block that [p, p + n) lies in; 0 when none holds it.
    std::size_t size_of_block_holding(const void* p, std::size_t n) const {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = live_.upper_bound(const_cast<void*>(p));
        if (it == live_.begin()) return 0;
        --it;
        const auto* start = static_cast<const unsigned char*>(it->first);
        const auto* q = static_cast<const unsigned char*>(p);
        return q + (n == 0 ? 1 : n) <= start + it->second.bytes ? it->second.bytes : 0;
    }

private:
    struct info {
        std::size_t bytes;
        std::size_t alignment;
    };
    std::size_t guarded(const std::size_t& v) const {
        std::lock_guard<std::mutex> lock(mutex_);
        return v;
    }
    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        check(alignment != 0 && (alignment & (alignment - 1)) == 0, "upstream: alignment not a power of two");
        void* p = std::pmr::new_delete_resource()->allocate(bytes, alignment);
        std::lock_guard<std::mutex> lock(mutex_);
        ++allocations_;
        check(live_.emplace(p, info{bytes, alignment}).second, "upstream: block handed out twice");
        outstanding_bytes_ += bytes;
        return p;
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ++deallocations_;
            auto it = live_.find(p);
            check(it != live_.end(), "upstream: deallocate of an unknown or freed pointer");
            check(it->second.bytes == bytes, "upstream: deallocate with another size");
            check(it->second.alignment == alignment, "upstream: deallocate with another alignment");
            outstanding_bytes_ -= bytes;
            live_.erase(it);
        }
        std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
    }
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

    mutable std::mutex mutex_;
    std::map<void*, info> live_;
    std::size_t allocations_ = 0;
    std::size_t deallocations_ = 0;
    std::size_t outstanding_bytes_ = 0;
};

// ---- memory kept across inputs -----------------------------------------------------------

// libFuzzer's own leak check (-detect_leaks) runs LeakSanitizer after every
// input whose mallocs and frees differ, which the library's per-thread state,
// created on first use, always causes: run_fuzz.sh turns it off, being ~100x
// slower. Instead the harness counts, through the sanitizer allocator hooks,
// the allocations made and not freed while inputs run: per-thread state may
// be created once, but a leak of every input makes the sum grow without bound.
std::atomic<long long> heap_net{0};
bool counting = false; // written only while the workers are idle
/// Fitted allocations seen in all inputs (POOL_FUZZER_TRACE prints it: the
/// fuzzer reaches fit).
std::atomic<unsigned long long> fits_seen{0};

void count_malloc(const volatile void*, std::size_t) {
    if (counting) heap_net.fetch_add(1, std::memory_order_relaxed);
}
void count_free(const volatile void*) {
    if (counting) heap_net.fetch_sub(1, std::memory_order_relaxed);
}

/// Allocations that may stay live from one input to the next, in all: each of
/// the four threads keeps its records of destroyed pools until it has 64 of
/// them, then sweeps them (src/thread_registry.cpp); a record is a cache and
/// a hash-map node, plus the map's bucket array. A leak of even one
/// allocation per input passes this bound within a few thousand inputs.
constexpr long long kept_allocations_bound = 4 * (2 * 64 + 32);

// ---- worker threads that run one step at a time -------------------------------------------

class worker {
public:
    worker() : thread_([this] { loop(); }) {}
    /// Runs `job` on this worker and returns when it has finished.
    void run(const std::function<void()>& job) {
        std::unique_lock<std::mutex> lock(mutex_);
        job_ = &job;
        cv_.notify_all();
        cv_.wait(lock, [this] { return job_ == nullptr; });
    }

private:
    void loop() {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            cv_.wait(lock, [this] { return job_ != nullptr; });
            (*job_)();
            job_ = nullptr;
            cv_.notify_all();
        }
    }
    std::mutex mutex_;
    std::condition_variable cv_;
    const std::function<void()>* job_ = nullptr;
    std::thread thread_;
};

constexpr std::size_t worker_count = 3;

/// The workers live for the whole process (never destroyed: libFuzzer leaves
/// through exit(), and a joinable std::thread must not be destroyed).
worker& worker_at(std::size_t i) {
    static worker* workers = [] {
        auto* w = new worker[worker_count];
        return w;
    }();
    return workers[i];
}

// ---- input decoding -------------------------------------------------------------------------

class reader {
public:
    reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    bool empty() const { return pos_ >= size_; }
    std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
    std::uint32_t u16() { return static_cast<std::uint32_t>(byte()) << 8 | byte(); }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

struct live_block {
    void* data = nullptr;
    std::size_t bytes = 0;
    std::size_t alignment = 0;
    std::optional<zp::buffer> buf; // set for get() blocks
    std::uint64_t gen = 0;
    bool fitted = false; // served by a block of a larger class (stats().fitted_allocations grew)
};

constexpr std::size_t max_live = 64;
constexpr std::size_t max_pooled = 128 * 1024;

/// A size: tiny (pass-through below min_buffer_size), 1..65 KiB, 1..17 KiB,
/// or up to 256 KiB (pass-through above max_pooled). Kept moderate: a fresh
/// large block costs page faults, which would dominate the run.
std::size_t decode_size(reader& in) {
    const std::uint8_t shape = in.byte();
    const std::uint32_t v = in.u16();
    switch (shape >> 6) {
    case 0: return v % 1024u;
    case 1: return 1024u + static_cast<std::size_t>(v);
    case 2: return 1024u + static_cast<std::size_t>(v % 16384u);
    default: return static_cast<std::size_t>(v) << 2;
    }
}

/// What upstream holds for a live block obtained from `pool`.
std::size_t upstream_bytes_of(const zp::sharded_buffer_resource& pool, std::size_t bytes, std::size_t alignment) {
    const std::size_t s = zp::detail::classified_size(bytes, alignment);
    const bool pooled = s >= pool.config().min_buffer_size && s <= pool.config().max_buffer_size &&
                        alignment <= zp::detail::page_alignment;
    if (!pooled) return bytes == 0 ? 1 : bytes; // a pass-through of 0 bytes asks upstream for 1
    return zp::detail::upstream_size(zp::detail::class_index(s));
}

void check_accounting(const zp::sharded_buffer_resource& pool, const recording_upstream& up,
                      const std::vector<live_block>& live) {
    const zp::pool_stats st = pool.stats();
    check(st.upstream_allocations == up.allocations(), "stats: upstream_allocations differs from upstream");
    check(st.upstream_deallocations == up.deallocations(), "stats: upstream_deallocations differs from upstream");
    check(st.idle_bytes <= st.reserved_bytes, "stats: idle_bytes > reserved_bytes");
    check(st.reserved_bytes <= pool.config().max_cached_bytes, "stats: reserved_bytes > max_cached_bytes");
    std::size_t held_bytes = 0;
    std::size_t held_blocks = 0;
    std::size_t fitted_blocks = 0;
    std::size_t fitted_requested = 0;
    std::size_t fitted_bytes = 0;
    for (const live_block& b : live) {
        const std::size_t cap = b.buf ? b.buf->capacity() : b.bytes;
        if (b.buf && cap == 0) continue; // an empty buffer holds no block
        const std::size_t exact = upstream_bytes_of(pool, cap, b.alignment);
        ++held_blocks;
        if (!b.fitted) {
            held_bytes += exact;
            continue;
        }
        const std::size_t block = up.size_of_block_holding(b.data, b.bytes);
        check(block > exact, "a fitted block is not larger than its request's class");
        const std::size_t cls = zp::detail::class_index(zp::detail::classified_size(cap, b.alignment));
        const std::size_t bound = pool.config().max_fit_classes;
        check(block <= zp::detail::upstream_size(static_cast<std::uint32_t>(cls + bound)), "a fitted block beyond the bound");
        held_bytes += block;
        ++fitted_blocks;
        fitted_requested += cap;
        fitted_bytes += block;
    }
    check(st.live_fitted_blocks == fitted_blocks, "stats: live_fitted_blocks differs");
    check(st.live_fitted_requested_bytes == fitted_requested, "stats: live_fitted_requested_bytes differs");
    check(st.live_fitted_block_bytes == fitted_bytes, "stats: live_fitted_block_bytes differs");
    if (up.outstanding_bytes() != st.idle_bytes + held_bytes)
        std::fprintf(stderr, "upstream holds %zu bytes, pool idle %zu, live %zu\n", up.outstanding_bytes(),
                     st.idle_bytes, held_bytes);
    check(up.outstanding_bytes() == st.idle_bytes + held_bytes, "upstream bytes != idle + live bytes");
    check(up.outstanding_blocks() == st.idle_blocks + held_blocks, "upstream blocks != idle + live blocks");
}

void run_input(const std::uint8_t* data, std::size_t size) {
    reader in(data, size);
    const std::uint8_t cfg = in.byte();
    zp::pool_config config;
    config.with_tls_cache_size(1u + cfg % 4u)
        .with_num_shards(std::size_t{1} << ((cfg >> 2) % 3u))
        .with_max_buffers_per_shard(1u + (cfg >> 4) % 4u)
        .with_max_buffer_size(max_pooled)
        .with_max_cached_bytes((cfg & 0x40) != 0 ? 64 * 1024 : std::size_t{8} << 20);
    static constexpr std::size_t fit_bounds[] = {0, 1, 8, zp::pool_config::exact_classes_only}; // 0: default (4)
    config.with_max_fit_classes(fit_bounds[in.byte() % 4u]);

    recording_upstream up;
    {
        zp::sharded_buffer_resource pool(config, &up);
        std::vector<live_block> live;
        live.reserve(max_live);
        std::size_t current = worker_count; // worker_count: the fuzzer's own thread
        std::uint64_t next_gen = 1;
        auto on_current = [&](const std::function<void()>& step) {
            if (current == worker_count)
                step();
            else
                worker_at(current).run(step);
        };
        auto release = [&](live_block& b) {
            check(intact(b.data, b.bytes, b.gen), "contents changed while owned");
            if (b.buf) {
                pool.put(std::move(*b.buf));
                check(b.buf->empty() && b.buf->capacity() == 0, "put() left storage in the buffer");
            } else {
                pool.deallocate(b.data, b.bytes, b.alignment);
            }
        };

        while (!in.empty()) {
            const std::uint8_t op = in.byte();
            switch (op % 8u) {
            case 0:
            case 1: { // allocate(size, alignment)
                if (live.size() >= max_live) break;
                const std::size_t bytes = decode_size(in);
                const std::size_t alignment = std::size_t{1} << (in.byte() % 14u); // 1 .. 8192
                on_current([&] {
                    live_block b;
                    b.bytes = bytes;
                    b.alignment = alignment;
                    b.gen = next_gen++;
                    const std::uint64_t fitted = pool.stats().fitted_allocations;
                    b.data = pool.allocate(bytes, alignment);
                    b.fitted = pool.stats().fitted_allocations != fitted;
                    if (b.fitted) fits_seen.fetch_add(1, std::memory_order_relaxed);
                    check(reinterpret_cast<std::uintptr_t>(b.data) % alignment == 0, "misaligned block");
                    fill(b.data, bytes, b.gen);
                    live.push_back(std::move(b));
                });
                break;
            }
            case 2: { // get(size)
                if (live.size() >= max_live) break;
                const std::size_t bytes = decode_size(in);
                on_current([&] {
                    live_block b;
                    const std::uint64_t fitted = pool.stats().fitted_allocations;
                    b.buf.emplace(pool.get(bytes));
                    b.fitted = pool.stats().fitted_allocations != fitted;
                    if (b.fitted) fits_seen.fetch_add(1, std::memory_order_relaxed);
                    check(b.buf->size() == bytes, "get() returned the wrong size");
                    b.data = b.buf->data();
                    b.bytes = bytes;
                    b.alignment = alignof(std::byte); // what the buffer's allocator asks
                    b.gen = next_gen++;
                    fill(b.data, bytes, b.gen);
                    live.push_back(std::move(b));
                });
                break;
            }
            case 3:
            case 4: { // deallocate / put a live block
                if (live.empty()) break;
                const std::size_t k = in.byte() % live.size();
                on_current([&] {
                    release(live[k]);
                    live[k] = std::move(live.back());
                    live.pop_back();
                });
                break;
            }
            case 5: { // rewrite a live block's contents
                if (live.empty()) break;
                const std::size_t k = in.byte() % live.size();
                on_current([&] {
                    live_block& b = live[k];
                    check(intact(b.data, b.bytes, b.gen), "contents changed while owned");
                    b.gen = next_gen++;
                    fill(b.data, b.bytes, b.gen);
                });
                break;
            }
            case 6: { // switch thread
                current = in.byte() % (worker_count + 1);
                break;
            }
            default: { // trim or stats
                if (in.byte() % 2 == 0)
                    on_current([&] { pool.trim(); });
                else
                    on_current([&] { check_accounting(pool, up, live); });
                break;
            }
            }
            check_accounting(pool, up, live);
        }
        // Free what is left, on the thread named by the input's last switch.
        on_current([&] {
            for (live_block& b : live) release(b);
            live.clear();
        });
        check_accounting(pool, up, live);
    } // the destructor returns every idle block, including the workers' caches
    check(up.outstanding_blocks() == 0, "upstream not balanced after the pool's destructor (blocks)");
    check(up.outstanding_bytes() == 0, "upstream not balanced after the pool's destructor (bytes)");
    check(up.allocations() == up.deallocations(), "upstream calls unbalanced");
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    __sanitizer_install_malloc_and_free_hooks(count_malloc, count_free);
    for (std::size_t i = 0; i < worker_count; ++i) (void)worker_at(i); // start them now
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    counting = true;
    run_input(data, size);
    counting = false;
    static const bool trace = std::getenv("POOL_FUZZER_TRACE") != nullptr;
    if (trace)
        std::fprintf(stderr, "pool_fuzzer: %lld allocations kept so far, %llu fitted allocations\n", heap_net.load(),
                     fits_seen.load());
    if (heap_net.load() > kept_allocations_bound) {
        std::fprintf(stderr, "pool_fuzzer: %lld allocations kept across inputs\n", heap_net.load());
        fail("memory leaked across inputs");
    }
    return 0;
}
