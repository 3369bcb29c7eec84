// The pressure_trimmer: an injected pressure source (a pipe, an eventfd)
// makes it trim the pool, parked threads' caches included, once per event;
// its destructor returns at once, event or not; the real PSI trigger is
// installed where the kernel offers it (a machine without PSI passes with a
// message); bad arguments are refused. Over the recording upstream, balanced.
#include <zeropool/pressure_trimmer.hpp>
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE pressure_trimmer
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include <poll.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

namespace {

namespace zp = zeropool;
using zeropool_test::arrivals;
using zeropool_test::eventually;
using zeropool_test::expect_balanced;
using zeropool_test::gate;
using zeropool_test::kib;
using zeropool_test::mib;
using zeropool_test::recording_resource;

using clock_type = std::chrono::steady_clock;

/// A pipe for the tests: both ends closed at the end of the scope.
struct test_pipe {
    int read_end = -1;
    int write_end = -1;
    test_pipe() {
        int fds[2];
        BOOST_REQUIRE(::pipe(fds) == 0);
        read_end = fds[0];
        write_end = fds[1];
    }
    ~test_pipe() {
        close_write();
        if (read_end >= 0) ::close(read_end);
    }
    test_pipe(const test_pipe&) = delete;
    test_pipe& operator=(const test_pipe&) = delete;

    /// Writes `n` bytes in one write() call (the trimmer reads them together).
    void signal(std::size_t n = 1) const {
        const char bytes[8] = {};
        BOOST_REQUIRE(n <= sizeof bytes);
        BOOST_REQUIRE(::write(write_end, bytes, n) == static_cast<ssize_t>(n));
    }
    void close_write() {
        if (write_end >= 0) ::close(write_end);
        write_end = -1;
    }
};

/// How long destroying `trimmer` takes.
std::chrono::milliseconds destroy_timed(std::unique_ptr<zp::pressure_trimmer>& trimmer) {
    const auto start = clock_type::now();
    trimmer.reset();
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start);
}

/// A pool without release by demand: only trim() returns idle blocks.
zp::pool_config trim_only() { return zp::pool_config{}.with_idle_release_ms(zp::pool_config::no_idle_release); }

/// Blocks a worker caches: three classes, the largest 1 MiB.
void cache_some_blocks(zp::sharded_buffer_resource& pool, int t) {
    const std::size_t sizes[3] = {16 * kib, 64 * kib + static_cast<std::size_t>(t) * kib, 1 * mib};
    void* b[3];
    for (int i = 0; i < 3; ++i) b[i] = pool.allocate(sizes[i]);
    for (int i = 0; i < 3; ++i) pool.deallocate(b[i], sizes[i]); // into this thread's cache
}

} // namespace

// ---- an injected pressure source ------------------------------------------------------

// Parked threads cache blocks; each byte written to the pipe is one trim,
// which returns every idle block upstream; the destructor returns at once.
BOOST_AUTO_TEST_CASE(each_byte_on_a_pipe_trims_the_pool_parked_threads_included, *boost::unit_test::timeout(60)) {
    constexpr int workers = 4;
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(trim_only(), &up);
        test_pipe source;
        gate second_round;
        gate finish;
        arrivals cached_first(workers);
        arrivals cached_second(workers);
        std::vector<std::thread> threads;
        for (int t = 0; t < workers; ++t) {
            threads.emplace_back([&, t] {
                cache_some_blocks(pool, t);
                cached_first.arrive();
                second_round.wait(); // parked: it will not call the pool until the trim is over
                cache_some_blocks(pool, t);
                cached_second.arrive();
                finish.wait();
            });
        }
        cached_first.wait();
        const zp::pool_stats before = pool.stats();
        BOOST_TEST(before.idle_blocks >= static_cast<std::size_t>(workers));

        auto trimmer = std::make_unique<zp::pressure_trimmer>(pool, source.read_end, static_cast<short>(POLLIN));
        std::this_thread::sleep_for(std::chrono::milliseconds(50)); // no event: no trim
        BOOST_TEST(trimmer->trims() == 0u);
        BOOST_TEST(pool.stats().idle_blocks == before.idle_blocks);

        source.signal();
        BOOST_TEST(eventually([&] { return trimmer->trims() >= 1 && pool.stats().idle_blocks == 0; }));
        BOOST_TEST(trimmer->trims() == 1u);
        const zp::pool_stats first = pool.stats();
        BOOST_TEST(first.idle_blocks == 0u);
        BOOST_TEST(first.idle_bytes == 0u);
        BOOST_TEST(first.reserved_bytes == 0u);
        BOOST_TEST(first.released_by_trim_bytes >= before.idle_bytes);
        BOOST_TEST(up.outstanding_blocks() == 0u); // every block is back upstream

        // A second round of cached blocks, a second byte, a second trim.
        second_round.open();
        cached_second.wait();
        BOOST_TEST(pool.stats().idle_blocks >= static_cast<std::size_t>(workers));
        BOOST_TEST(trimmer->trims() == 1u);
        source.signal();
        BOOST_TEST(eventually([&] { return trimmer->trims() >= 2 && pool.stats().idle_blocks == 0; }));
        BOOST_TEST(trimmer->trims() == 2u);
        BOOST_TEST(up.outstanding_blocks() == 0u);

        const std::chrono::milliseconds took = destroy_timed(trimmer);
        BOOST_TEST_MESSAGE("destructor after two trims: " << took.count() << " ms");
        BOOST_TEST(took.count() < 1000);

        finish.open();
        for (std::thread& th : threads) th.join();
    }
    expect_balanced(up);
}

// No event at all: the destructor wakes the thread itself, at once.
BOOST_AUTO_TEST_CASE(the_destructor_returns_promptly_without_an_event, *boost::unit_test::timeout(30)) {
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(trim_only(), &up);
        cache_some_blocks(pool, 0);
        test_pipe source;
        for (int round = 0; round < 20; ++round) {
            auto trimmer = std::make_unique<zp::pressure_trimmer>(pool, source.read_end, static_cast<short>(POLLIN));
            if (round % 2 == 1) std::this_thread::sleep_for(std::chrono::milliseconds(5)); // the thread in poll()
            const std::chrono::milliseconds took = destroy_timed(trimmer);
            BOOST_TEST(took.count() < 1000, "round " << round << ": " << took.count() << " ms");
        }
        BOOST_TEST(pool.stats().idle_blocks > 0u); // never trimmed
    }
    expect_balanced(up);
}

// Bytes written together make one event and one trim: the trimmer read them all.
BOOST_AUTO_TEST_CASE(bytes_written_together_are_one_trim, *boost::unit_test::timeout(30)) {
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(trim_only(), &up);
        test_pipe source;
        zp::pressure_trimmer trimmer(pool, source.read_end, POLLIN);
        source.signal(8);
        BOOST_TEST(eventually([&] { return trimmer.trims() >= 1; }));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        BOOST_TEST(trimmer.trims() == 1u); // the pipe was drained: no event left
        pollfd pending{source.read_end, POLLIN, 0};
        BOOST_TEST(::poll(&pending, 1, 0) == 0);
    }
    expect_balanced(up);
}

#if defined(__linux__)
// An eventfd: its counter is read (and so reset) on each event.
BOOST_AUTO_TEST_CASE(an_eventfd_is_a_pressure_source, *boost::unit_test::timeout(30)) {
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(trim_only(), &up);
        const int efd = ::eventfd(0, EFD_CLOEXEC);
        BOOST_REQUIRE(efd >= 0);
        {
            zp::pressure_trimmer trimmer(pool, efd, POLLIN);
            for (std::size_t n = 1; n <= 3; ++n) {
                cache_some_blocks(pool, 0);
                BOOST_TEST(pool.stats().idle_blocks > 0u);
                const std::uint64_t add = 5;
                BOOST_REQUIRE(::write(efd, &add, sizeof add) == static_cast<ssize_t>(sizeof add));
                BOOST_TEST(eventually([&] { return trimmer.trims() >= n && pool.stats().idle_blocks == 0; }));
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
                BOOST_TEST(trimmer.trims() == n); // the counter was read: one trim per write
            }
        }
        ::close(efd); // the caller's: after the trimmer
    }
    expect_balanced(up);
}
#endif

// The source's end of input (the writer closed the pipe): the pending byte is
// one last trim, then the thread stops watching, with no busy loop; the
// destructor still returns at once.
BOOST_AUTO_TEST_CASE(the_end_of_the_source_stops_the_thread, *boost::unit_test::timeout(30)) {
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(trim_only(), &up);
        test_pipe source;
        auto trimmer = std::make_unique<zp::pressure_trimmer>(pool, source.read_end, static_cast<short>(POLLIN));
        source.signal();
        source.close_write();
        BOOST_TEST(eventually([&] { return trimmer->trims() >= 1; }));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        BOOST_TEST(trimmer->trims() == 1u);
        const std::chrono::milliseconds took = destroy_timed(trimmer);
        BOOST_TEST(took.count() < 1000);
    }
    expect_balanced(up);
}

// ---- the kernel's pressure (PSI) ----------------------------------------------------------

// The default trigger, where the kernel offers PSI; no memory pressure is
// created: the trimmer is only built and destroyed (at once).
BOOST_AUTO_TEST_CASE(the_psi_trigger_is_installed_where_the_kernel_offers_it, *boost::unit_test::timeout(30)) {
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(trim_only(), &up);
        std::unique_ptr<zp::pressure_trimmer> trimmer;
        try {
            trimmer = std::make_unique<zp::pressure_trimmer>(pool);
        } catch (const std::system_error& e) {
            BOOST_TEST_MESSAGE("no PSI trigger on this machine (" << e.code() << "): " << e.what());
        }
        if (trimmer) {
            BOOST_TEST_MESSAGE("PSI trigger \"some 150000 2000000\" installed on /proc/pressure/memory");
            std::this_thread::sleep_for(std::chrono::milliseconds(20)); // the thread in poll()
            BOOST_TEST_MESSAGE("trims so far: " << trimmer->trims()); // 0 unless the machine is short of memory
            const std::chrono::milliseconds took = destroy_timed(trimmer);
            BOOST_TEST(took.count() < 1000);

            // "full", and two triggers at once (each trimmer has its own fd).
            zp::pressure_trimmer full(pool, zp::pressure_trigger{std::chrono::milliseconds(100),
                                                                 std::chrono::seconds(2), true});
            zp::pressure_trimmer other(pool);

            // A 1 s window: accepted with CAP_SYS_RESOURCE, refused (EINVAL)
            // without it, as the window is not a multiple of 2 s.
            try {
                zp::pressure_trimmer one_second(pool, zp::pressure_trigger{std::chrono::milliseconds(100),
                                                                           std::chrono::seconds(1), false});
                BOOST_TEST_MESSAGE("a 1 s window was accepted: the process has CAP_SYS_RESOURCE");
            } catch (const std::system_error& e) {
                BOOST_TEST_MESSAGE("a 1 s window was refused (" << e.code() << "): an unprivileged process");
                BOOST_TEST((e.code() == std::errc::invalid_argument));
            }
        }
    }
    expect_balanced(up);
}

// ---- bad arguments ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(bad_arguments_are_refused, *boost::unit_test::timeout(30)) {
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(trim_only(), &up);
        // An injected source: a negative fd or no event is the caller's error.
        BOOST_CHECK_THROW(zp::pressure_trimmer(pool, -1, POLLIN), std::invalid_argument);
        test_pipe source;
        BOOST_CHECK_THROW(zp::pressure_trimmer(pool, source.read_end, 0), std::invalid_argument);
        // A descriptor that is not open.
        int closed = -1;
        {
            test_pipe gone;
            closed = gone.read_end;
        }
        try {
            zp::pressure_trimmer trimmer(pool, closed, POLLIN);
            BOOST_ERROR("a closed descriptor was accepted");
        } catch (const std::system_error& e) {
            BOOST_TEST((e.code() == std::errc::bad_file_descriptor));
        }

        // A trigger outside the documented ranges, on every system.
        using std::chrono::milliseconds;
        using std::chrono::seconds;
        const zp::pressure_trigger bad[] = {
            {milliseconds(100), milliseconds(499), false}, // window under 500 ms
            {milliseconds(100), seconds(11), false},       // window over 10 s
            {milliseconds(0), seconds(2), false},          // no stall
            {milliseconds(-1), seconds(2), true},          // negative stall
            {seconds(3), seconds(2), false},               // stall longer than the window
        };
        for (const zp::pressure_trigger& t : bad)
            BOOST_CHECK_THROW(zp::pressure_trimmer(pool, t), std::invalid_argument);
    }
    expect_balanced(up);
}
