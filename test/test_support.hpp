// Shared by the zeropool tests: how the test binary was built (sanitizers),
// loop scaling, size constants, the size-class expectations, a failure log
// for worker threads, and waits with deadlines. Include after
// <boost/test/unit_test.hpp>.
#ifndef ZEROPOOL_TEST_TEST_SUPPORT_HPP
#define ZEROPOOL_TEST_TEST_SUPPORT_HPP

#ifndef BOOST_TEST
#error "test_support.hpp: #define BOOST_TEST_MODULE and #include <boost/test/unit_test.hpp> first"
#endif

#include <zeropool/detail/size_class.hpp>
#include <zeropool/pool_stats.hpp>

#include "pattern.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <condition_variable>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <signal.h>
#include <string>
#include <sys/types.h>
#include <sys/wait.h>
#include <thread>
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
    BOOST_TEST(a.idle_bytes == b.idle_bytes);
    BOOST_TEST(a.idle_blocks == b.idle_blocks);
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

/// Counts arrivals of threads. wait() returns once `expected` threads have
/// arrived; arrive_and_wait() is both (a one-shot barrier).
class arrivals {
public:
    explicit arrivals(int expected) : expected_(expected) {}
    void arrive() {
        // Notified under the lock: a waiter may destroy this object as soon as
        // wait() returns, which it cannot do before the lock is released.
        std::lock_guard<std::mutex> lock(mutex_);
        ++count_;
        cv_.notify_all();
    }
    void wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [this] { return count_ >= expected_; });
    }
    void arrive_and_wait() {
        arrive();
        wait();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    int expected_;
    int count_ = 0;
};

/// A gate threads wait at until the test opens it (once).
class gate {
public:
    void wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [this] { return open_; });
    }
    void open() {
        std::lock_guard<std::mutex> lock(mutex_); // notified under the lock, as arrivals does
        open_ = true;
        cv_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};

/// Polls `done` every few milliseconds until it holds (true) or `limit`
/// passes (false): a wait with a deadline, never an unbounded one.
template <class F>
bool eventually(F&& done, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

/// How a child process ended, as wait_for_child saw it.
struct child_outcome {
    bool timed_out = false; ///< still running at the deadline, then killed
    bool exited = false;    ///< ended through exit(): exit_code is its status
    int exit_code = -1;
    int signal = 0; ///< the signal that ended it, when it did not exit
};

/// Waits for the child `pid` until it ends or `limit` passes: a child still
/// running then (deadlocked, for the fork tests) is killed with SIGKILL and
/// reported as timed out. A wait with a deadline, never an unbounded one.
/// Does not use Boost.Test, so any thread may call it.
inline child_outcome wait_for_child(pid_t pid, std::chrono::milliseconds limit) {
    child_outcome out;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    for (;;) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r == -1 && errno != EINTR) return out; // not our child: nothing to report
        if (std::chrono::steady_clock::now() > deadline) {
            out.timed_out = true;
            ::kill(pid, SIGKILL);
            while (::waitpid(pid, &status, 0) == -1 && errno == EINTR) {
            }
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (WIFEXITED(status)) {
        out.exited = true;
        out.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        out.signal = WTERMSIG(status);
    }
    return out;
}

/// The value of the environment variable `name` as a positive integer, or
/// `fallback` when it is unset, empty, not a number or not positive.
inline long env_param(const char* name, long fallback) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return fallback;
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    return (end != nullptr && *end == '\0' && n > 0) ? n : fallback;
}

/// Word indices written by fill_pattern in a block of `bytes` (a multiple of
/// 8 bytes is not needed; the tail is ignored): every word of the first and
/// last 4 KiB, and one word in every 512 bytes between them, so every page is
/// touched and any overlap of two live blocks is seen at a bounded cost.
template <typename F>
inline void for_pattern_words(std::size_t bytes, F&& f) {
    const std::size_t words = bytes / sizeof(std::uint64_t);
    constexpr std::size_t edge = 512;  // words: 4 KiB
    constexpr std::size_t stride = 64; // words: 512 bytes
    if (words <= 2 * edge) {
        for (std::size_t i = 0; i < words; ++i) f(i);
        return;
    }
    for (std::size_t i = 0; i < edge; ++i) f(i);
    for (std::size_t i = edge; i < words - edge; i += stride) f(i);
    for (std::size_t i = words - edge; i < words; ++i) f(i);
}

/// Writes the pattern of (p, gen) into the `bytes` at p (8-byte aligned p).
inline void fill_pattern(void* p, std::size_t bytes, std::uint64_t gen = 0) noexcept {
    auto* w = static_cast<std::uint64_t*>(p);
    for_pattern_words(bytes, [&](std::size_t i) { w[i] = pattern_word(p, i, gen); });
}

/// True when the `bytes` at p still hold the pattern of (p, gen).
inline bool check_pattern(const void* p, std::size_t bytes, std::uint64_t gen = 0) noexcept {
    const auto* w = static_cast<const std::uint64_t*>(p);
    bool ok = true;
    for_pattern_words(bytes, [&](std::size_t i) { ok = ok && w[i] == pattern_word(p, i, gen); });
    return ok;
}

} // namespace zeropool_test

#endif // ZEROPOOL_TEST_TEST_SUPPORT_HPP
