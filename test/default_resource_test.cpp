// zeropool as the process-wide default memory resource: a realistic workload
// (threads parsing text into std::pmr containers built without an explicit
// resource, a std pool built over the default, zeropool::buffer with the
// default allocator) runs while std::pmr::set_default_resource points at a
// zeropool pool. A RAII guard restores the previous default, even when the
// test body throws; the recording upstream balances at the end.
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE default_resource
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory_resource>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

using zeropool::pool_config;
using zeropool::sharded_buffer_resource;
using zeropool_test::default_resource_guard;
using zeropool_test::expect_balanced;
using zeropool_test::kib;
using zeropool_test::recording_resource;
using zeropool_test::scaled;


constexpr int words_per_line = 12;
constexpr int word_kinds = 97;

/// Word `k` of the synthetic corpus: long enough to live on the heap.
std::string word(int k) { return "word-" + std::to_string(k) + std::string(24, static_cast<char>('a' + k % 26)); }

/// Line `i` of the synthetic corpus: words_per_line words separated by spaces.
std::pmr::string make_line(int i) {
    std::pmr::string line; // on the default resource
    for (int w = 0; w < words_per_line; ++w) {
        if (w != 0) line += ' ';
        line += word((i * words_per_line + w) % word_kinds).c_str();
    }
    return line;
}

/// What one worker thread computes: word counts of lines [first, first + n).
struct word_counts {
    std::pmr::map<std::pmr::string, long> by_word;
    std::size_t total = 0;
    bool everything_on_default = true;
};

/// The workload: builds the lines, splits them, counts words in a map and an
/// unordered_map, keeps some large read buffers (zeropool::buffer and a
/// std::pmr::vector), and a std pool built over the default resource. Nothing
/// names a resource: everything uses std::pmr::get_default_resource().
word_counts count_words(int first, int n) {
    std::pmr::memory_resource* const expected = std::pmr::get_default_resource();
    word_counts result;
    std::pmr::unordered_map<std::pmr::string, long> seen;
    std::pmr::vector<std::pmr::string> lines;
    std::pmr::synchronized_pool_resource scratch; // upstream: the default resource
    for (int i = first; i < first + n; ++i) {
        lines.push_back(make_line(i));
        std::pmr::vector<std::pmr::string> tokens(&scratch);
        const std::pmr::string& line = lines.back();
        std::size_t start = 0;
        while (start <= line.size()) {
            std::size_t end = line.find(' ', start);
            if (end == std::pmr::string::npos) end = line.size();
            tokens.emplace_back(line.substr(start, end - start));
            start = end + 1;
        }
        for (const auto& t : tokens) {
            ++result.by_word[std::pmr::string(t)];
            ++seen[std::pmr::string(t)];
            ++result.total;
        }
        // A read buffer per 50 lines, as an I/O loop would use.
        if (i % 50 == 0) {
            zeropool::buffer block(64 * kib); // default_init_allocator(): the default resource
            block[0] = std::byte{1};
            std::pmr::vector<char> text_block(16 * kib, 'x');
            result.everything_on_default = result.everything_on_default &&
                                           block.get_allocator().resource() == expected &&
                                           text_block.get_allocator().resource() == expected;
        }
    }
    result.everything_on_default = result.everything_on_default &&
                                   result.by_word.get_allocator().resource() == expected &&
                                   seen.get_allocator().resource() == expected &&
                                   lines.get_allocator().resource() == expected &&
                                   scratch.upstream_resource() == expected &&
                                   seen.size() == result.by_word.size();
    return result;
}

} // namespace

BOOST_AUTO_TEST_SUITE(default_resource_suite)

BOOST_AUTO_TEST_CASE(guard_restores_the_default_on_exception, *boost::unit_test::timeout(30)) {
    std::pmr::memory_resource* const before = std::pmr::get_default_resource();
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}.with_num_shards(2), &upstream);
        try {
            const default_resource_guard guard(&pool);
            BOOST_TEST(guard.previous() == before);
            BOOST_TEST(std::pmr::get_default_resource() == &pool);
            std::pmr::vector<int> v(10000, 3);
            BOOST_TEST(upstream.is_live(v.data()));
            throw std::runtime_error("workload failed");
        } catch (const std::runtime_error&) {
        }
        BOOST_TEST(std::pmr::get_default_resource() == before);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(threaded_workload_on_a_default_zeropool, *boost::unit_test::timeout(120)) {
    std::pmr::memory_resource* const before = std::pmr::get_default_resource();
    const int threads = 4;
    static const int lines_per_thread = scaled(4000, 800);
    recording_resource upstream; // over new_delete_resource(), never the default
    {
        sharded_buffer_resource pool(pool_config{}.with_num_shards(4), &upstream);
        std::vector<word_counts> results;
        {
            const default_resource_guard guard(&pool);
            results.reserve(threads); // std::vector: not on the pool
            for (int t = 0; t < threads; ++t) results.emplace_back();
            std::vector<std::thread> workers;
            for (int t = 0; t < threads; ++t)
                workers.emplace_back([&results, t] {
                    results[static_cast<std::size_t>(t)] = count_words(t * lines_per_thread, lines_per_thread);
                });
            for (auto& w : workers) w.join();
        }
        BOOST_TEST(std::pmr::get_default_resource() == before);

        // The results are right: every line has words_per_line words, and
        // the counts over all threads add up to the corpus.
        std::map<std::string, long> merged;
        std::size_t total = 0;
        bool on_default = true;
        for (const auto& r : results) {
            total += r.total;
            on_default = on_default && r.everything_on_default &&
                         r.by_word.get_allocator().resource() == &pool;
            for (const auto& [w, c] : r.by_word) merged[std::string(w)] += c;
        }
        BOOST_TEST(on_default);
        BOOST_TEST(total == static_cast<std::size_t>(threads * lines_per_thread * words_per_line));
        BOOST_TEST(merged.size() == static_cast<std::size_t>(word_kinds));
        long sum = 0;
        for (const auto& [w, c] : merged) sum += c;
        BOOST_TEST(sum == static_cast<long>(total));
        BOOST_TEST(merged.count(word(0)) == 1u);

        // All of it went through the pool: every upstream call is the pool's,
        // and the pooled blocks (buffers, std pool chunks, vector growth) were
        // reused rather than fetched again.
        const zeropool::pool_stats s = pool.stats();
        BOOST_TEST(s.upstream_allocations == upstream.allocate_calls());
        BOOST_TEST(s.upstream_allocations > 0u);
        BOOST_TEST(s.thread_cache_hits + s.shard_hits > 0u);
        results.clear(); // gives the maps back before the pool goes
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_SUITE_END()
