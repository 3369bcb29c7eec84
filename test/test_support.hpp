// Shared by the zeropool tests: how the test binary was built (sanitizers),
// loop scaling, size constants, the size-class expectations, and a failure log
// for worker threads. Include after <boost/test/unit_test.hpp>.
#ifndef ZEROPOOL_TEST_TEST_SUPPORT_HPP
#define ZEROPOOL_TEST_TEST_SUPPORT_HPP

#ifndef BOOST_TEST
#error "test_support.hpp: #define BOOST_TEST_MODULE and #include <boost/test/unit_test.hpp> first"
#endif

#include <zeropool/detail/size_class.hpp>
#include <zeropool/pool_stats.hpp>

#include <cstddef>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

// ZEROPOOL_TEST_TSAN / ZEROPOOL_TEST_ASAN: built with that sanitizer (g++
// defines __SANITIZE_*__, clang answers __has_feature).
#if defined(__SANITIZE_THREAD__)
#define ZEROPOOL_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ZEROPOOL_TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ZEROPOOL_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ZEROPOOL_TEST_ASAN 1
#endif
#endif

namespace zeropool_test {

inline constexpr std::size_t kib = std::size_t{1} << 10;
inline constexpr std::size_t mib = std::size_t{1} << 20;
inline constexpr std::size_t gib = std::size_t{1} << 30;

#if defined(ZEROPOOL_TEST_TSAN) || defined(ZEROPOOL_TEST_ASAN)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif

#if defined(ZEROPOOL_TEST_ASAN)
inline constexpr bool asan = true;
#else
inline constexpr bool asan = false;
#endif

/// Picks a loop count: `normal` in plain builds, `reduced` under sanitizers.
constexpr int scaled(int normal, int reduced) noexcept { return sanitized ? reduced : normal; }

/// The class size of a pooled request of max(bytes, alignment) = s.
inline std::size_t class_bytes(std::size_t s) {
    return zeropool::detail::class_size(zeropool::detail::class_index(s));
}
/// What upstream is asked for a block of the class of s (the class size, plus
/// the slack for the data offset in blocks of 64 KiB and more).
inline std::size_t upstream_bytes(std::size_t s) {
    return zeropool::detail::upstream_size(zeropool::detail::class_index(s));
}
/// The alignment upstream is asked for a block of the class of s.
inline std::size_t class_alignment(std::size_t s) {
    return zeropool::detail::block_alignment(zeropool::detail::class_index(s));
}

/// BOOST_TESTs that two snapshots agree in every field (for example: a
/// failed operation changed nothing).
inline void expect_same_stats(const zeropool::pool_stats& a, const zeropool::pool_stats& b) {
    BOOST_TEST(a.thread_cache_hits == b.thread_cache_hits);
    BOOST_TEST(a.shard_hits == b.shard_hits);
    BOOST_TEST(a.upstream_allocations == b.upstream_allocations);
    BOOST_TEST(a.upstream_deallocations == b.upstream_deallocations);
    BOOST_TEST(a.cached_bytes == b.cached_bytes);
    BOOST_TEST(a.cached_buffers == b.cached_buffers);
    BOOST_TEST(a.reserved_bytes == b.reserved_bytes);
}

/// Boost.Test assertions are not thread-safe: worker threads note failures
/// here (the first `kept` messages and a count) and the main thread reports
/// them with report().
class failure_log {
public:
    static constexpr std::size_t kept = 10;

    void add(std::string what) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (++count_ <= kept) messages_.push_back(std::move(what));
    }
    void check(bool ok, const char* what) {
        if (!ok) add(what);
    }
    /// The first messages noted.
    std::vector<std::string> messages() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return messages_;
    }
    /// Failures noted in all.
    std::size_t count() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return count_;
    }
    /// Reports every kept message as a test error, and fails unless none was noted.
    void report() const {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const std::string& m : messages_) BOOST_ERROR("worker thread: " << m);
        BOOST_TEST(count_ == 0u, count_ << " failure(s) in worker threads");
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> messages_;
    std::size_t count_ = 0;
};

} // namespace zeropool_test

#endif // ZEROPOOL_TEST_TEST_SUPPORT_HPP
