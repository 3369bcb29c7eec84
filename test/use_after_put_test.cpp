// Use-after-put detection: in AddressSanitizer builds the pool poisons idle
// blocks (src/asan.hpp), so a write to a buffer after put()
// or deallocate() is reported by ASan, as it would be after delete. Each case
// runs the faulty code in a forked child and expects ASan's report and a
// failing exit; a control child running the same code without the stale write
// must exit cleanly. Other builds have no detector to test: those cases are
// disabled there (Boost.Test reports them as skipped); the first case runs in
// every build.
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE use_after_put
#include <boost/test/unit_test.hpp>

#include "test_support.hpp"

#include <chrono>
#include <cstddef>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using zeropool::buffer;
using zeropool::pool_config;
using zeropool::sharded_buffer_resource;
using zeropool_test::kib;

struct child_result {
    bool exited_cleanly; // exit status 0
    std::string stderr_text;
};

/// Runs `body` in a forked child whose stderr is captured; the child exits 0
/// if `body` returns. Kills the child after 30 s.
template <class Body>
child_result run_in_child(Body body) {
    int pipe_fds[2];
    BOOST_TEST_REQUIRE(::pipe(pipe_fds) == 0);
    const pid_t pid = ::fork();
    BOOST_TEST_REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(pipe_fds[1], STDERR_FILENO);
        ::close(pipe_fds[0]);
        body();
        ::_exit(0);
    }
    ::close(pipe_fds[1]);
    ::fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
    std::string text;
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
        char chunk[4096];
        const ssize_t got = ::read(pipe_fds[0], chunk, sizeof chunk);
        if (got > 0) text.append(chunk, static_cast<std::size_t>(got));
        if (::waitpid(pid, &status, WNOHANG) == pid) break;
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            BOOST_ERROR("child did not finish within 30 s");
            break;
        }
        if (got <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (;;) { // what is left in the pipe
        char chunk[4096];
        const ssize_t got = ::read(pipe_fds[0], chunk, sizeof chunk);
        if (got <= 0) break;
        text.append(chunk, static_cast<std::size_t>(got));
    }
    ::close(pipe_fds[0]);
    return child_result{WIFEXITED(status) && WEXITSTATUS(status) == 0, text};
}

void write_byte(std::byte* p) { *reinterpret_cast<volatile unsigned char*>(p) = 1; }

} // namespace

BOOST_AUTO_TEST_SUITE(use_after_put_suite)

BOOST_AUTO_TEST_CASE(a_reused_block_is_usable_again, *boost::unit_test::timeout(60)) {
    // In every build: put then get hands the same storage back, and all of it
    // can be written (under ASan: the poison is lifted on the way out of each
    // tier, thread cache and shard alike).
    sharded_buffer_resource pool(pool_config{}.with_tls_cache_size(1));
    buffer a = pool.get(256 * kib);
    buffer b = pool.get(256 * kib);
    const std::byte* a_data = a.data();
    const std::byte* b_data = b.data();
    pool.put(std::move(a));
    pool.put(std::move(b)); // the cache holds one: `a` moves to a shard
    buffer from_cache = pool.get(256 * kib);
    buffer from_shard = pool.get(256 * kib);
    BOOST_TEST(from_cache.data() == b_data);
    BOOST_TEST(from_shard.data() == a_data);
    for (buffer* x : {&from_cache, &from_shard})
        for (std::size_t i = 0; i < x->size(); i += 512) write_byte(x->data() + i);
    // A cache of one slot: of the two idle blocks, the last put was in it and
    // the other in a shard, so one allocation was served by each tier (a
    // refill could only move the shard's block into the cache once the
    // cache's own block was taken: still one of each).
    const zeropool::pool_stats st = pool.stats();
    BOOST_TEST(st.thread_cache_hits == 1u);
    BOOST_TEST(st.shard_hits == 1u);
    pool.put(std::move(from_cache));
    pool.put(std::move(from_shard));
}

BOOST_AUTO_TEST_CASE(write_after_put_is_reported,
                     *boost::unit_test::enable_if<zeropool_test::asan>() * boost::unit_test::timeout(90)) {
    // The buffer goes back to the calling thread's cache.
    auto scenario = [](bool write_after_put) {
        return [write_after_put] {
            sharded_buffer_resource pool;
            buffer b = pool.get(64 * kib);
            std::byte* data = b.data();
            write_byte(data + 100); // fine: the buffer is ours
            pool.put(std::move(b));
            if (write_after_put) write_byte(data + 100);
        };
    };
    const child_result control = run_in_child(scenario(false));
    BOOST_TEST(control.exited_cleanly, "control child failed: " << control.stderr_text);
    const child_result faulty = run_in_child(scenario(true));
    BOOST_TEST(!faulty.exited_cleanly);
    BOOST_TEST(faulty.stderr_text.find("use-after-poison") != std::string::npos,
               "ASan report expected, got: " << faulty.stderr_text);
}

BOOST_AUTO_TEST_CASE(write_before_a_fitted_buffer_is_reported,
                     *boost::unit_test::enable_if<zeropool_test::asan>() * boost::unit_test::timeout(90)) {
    // A fitted block (design.md, "Fit"): the bytes before the buffer's data
    // hold the block's header, poisoned while the buffer is handed out; after
    // put() the whole block is poisoned, as any idle block.
    auto scenario = [](int stale_write) {
        return [stale_write] {
            sharded_buffer_resource pool;
            pool.put(pool.get(256 * kib));
            buffer b = pool.get(200 * kib); // class 224 KiB: the idle 256 KiB block serves it
            BOOST_TEST_REQUIRE(pool.stats().fitted_allocations == 1u);
            std::byte* data = b.data();
            write_byte(data); // fine: the buffer is ours
            if (stale_write == 1) write_byte(data - 8); // the header
            pool.put(std::move(b));
            if (stale_write == 2) write_byte(data + 100);
        };
    };
    const child_result control = run_in_child(scenario(0));
    BOOST_TEST(control.exited_cleanly, "control child failed: " << control.stderr_text);
    for (int stale_write : {1, 2}) {
        const child_result faulty = run_in_child(scenario(stale_write));
        BOOST_TEST(!faulty.exited_cleanly);
        BOOST_TEST(faulty.stderr_text.find("use-after-poison") != std::string::npos,
                   "ASan report expected for write " << stale_write << ", got: " << faulty.stderr_text);
    }
}

BOOST_AUTO_TEST_CASE(write_to_a_block_idle_in_a_shard_is_reported,
                     *boost::unit_test::enable_if<zeropool_test::asan>() * boost::unit_test::timeout(90)) {
    // A cache of one block: the second deallocate moves the first block to a
    // shard, where it must be poisoned too.
    auto scenario = [](bool write_after_deallocate) {
        return [write_after_deallocate] {
            sharded_buffer_resource pool(pool_config{}.with_tls_cache_size(1));
            void* first = pool.allocate(256 * kib);
            void* second = pool.allocate(256 * kib);
            pool.deallocate(first, 256 * kib);
            pool.deallocate(second, 256 * kib); // evicts `first` to a shard
            if (write_after_deallocate) write_byte(static_cast<std::byte*>(first) + 4096);
            void* again = pool.allocate(256 * kib); // the newest: `second`, from the cache
            void* other = pool.allocate(256 * kib); // `first`, from the shard: usable again
            write_byte(static_cast<std::byte*>(other) + 4096);
            pool.deallocate(again, 256 * kib);
            pool.deallocate(other, 256 * kib);
        };
    };
    const child_result control = run_in_child(scenario(false));
    BOOST_TEST(control.exited_cleanly, "control child failed: " << control.stderr_text);
    const child_result faulty = run_in_child(scenario(true));
    BOOST_TEST(!faulty.exited_cleanly);
    BOOST_TEST(faulty.stderr_text.find("use-after-poison") != std::string::npos,
               "ASan report expected, got: " << faulty.stderr_text);
}

BOOST_AUTO_TEST_SUITE_END()
