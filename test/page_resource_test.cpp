// zeropool::page_resource: alignment, the balance of map and unmap calls, huge
// page advice and its fallback, populate, errors surfacing as std::bad_alloc,
// and the composition under a pool (through a size_split_resource, whose own
// tests are in size_split_resource_test.cpp).
#include <zeropool/page_resource.hpp>
#include <zeropool/sharded_buffer_resource.hpp>
#include <zeropool/size_split_resource.hpp>

#define BOOST_TEST_MODULE page_resource
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory_resource>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>

namespace {

using zeropool::page_resource;
using zeropool::page_resource_options;
using zeropool::page_resource_stats;
using zeropool::size_split_resource; // for the composition under a pool
using zeropool::thp_mode;
using zeropool_test::expect_balanced;
using zeropool_test::kib;
using zeropool_test::mib;
using zeropool_test::recording_resource;

const std::size_t page = page_resource::page_size();

bool huge_pages_available() {
    const thp_mode m = page_resource::system_thp_mode();
    return page_resource::huge_page_size() != 0 && (m == thp_mode::always || m == thp_mode::madvise);
}

bool aligned_to(const void* p, std::size_t a) { return reinterpret_cast<std::uintptr_t>(p) % a == 0; }

/// Pages of [p, p + size) that are resident (mincore), or -1 when any page of
/// the range is not mapped at all.
long resident_pages(const void* p, std::size_t size) {
    std::vector<unsigned char> v((size + page - 1) / page);
    if (::mincore(const_cast<void*>(p), size, v.data()) != 0) return errno == ENOMEM ? -1 : -2;
    long n = 0;
    for (unsigned char c : v) n += (c & 1);
    return n;
}

bool is_mapped(const void* p, std::size_t size) { return resident_pages(p, size) >= 0; }

/// The process's virtual size in KiB (VmSize of /proc/self/status), read
/// without allocating, so that reading it maps nothing.
long vm_size_kib() {
    char text[4096];
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (f == nullptr) return -1;
    std::setvbuf(f, nullptr, _IONBF, 0); // no buffer to allocate
    const std::size_t n = std::fread(text, 1, sizeof text - 1, f);
    std::fclose(f);
    text[n] = '\0';
    const char* line = std::strstr(text, "VmSize:");
    return line == nullptr ? -1 : std::strtol(line + 7, nullptr, 10);
}

/// The VmFlags line of the mapping that starts at `p` in /proc/self/smaps, or
/// "" when there is none.
std::string vm_flags_of(const void* p) {
    std::ifstream smaps("/proc/self/smaps");
    char start[32];
    std::snprintf(start, sizeof start, "%lx-", static_cast<unsigned long>(reinterpret_cast<std::uintptr_t>(p)));
    std::string line;
    bool inside = false;
    while (std::getline(smaps, line)) {
        if (line.rfind(start, 0) == 0) inside = true;
        else if (inside && line.rfind("VmFlags:", 0) == 0) return line;
    }
    return "";
}

bool has_flag(const std::string& vm_flags, const char* flag) {
    std::istringstream words(vm_flags);
    std::string w;
    while (words >> w) {
        if (w == flag) return true;
    }
    return false;
}

void fill_and_check(void* p, std::size_t bytes) {
    auto* b = static_cast<unsigned char*>(p);
    for (std::size_t i = 0; i < bytes; i += 997) b[i] = static_cast<unsigned char>(i * 7 + 1);
    if (bytes != 0) b[bytes - 1] = 0x5a;
    bool ok = true;
    for (std::size_t i = 0; i + 1 < bytes; i += 997) ok = ok && b[i] == static_cast<unsigned char>(i * 7 + 1);
    if (bytes != 0) ok = ok && b[bytes - 1] == 0x5a;
    BOOST_TEST(ok);
}

void expect_stats(const page_resource& r, std::uint64_t maps, std::uint64_t unmaps, std::uint64_t mapped_bytes) {
    const page_resource_stats s = r.stats();
    BOOST_TEST(s.maps == maps);
    BOOST_TEST(s.unmaps == unmaps);
    BOOST_TEST(s.mapped_bytes == mapped_bytes);
}

std::size_t pages_of(std::size_t bytes) { return ((bytes == 0 ? 1 : bytes) + page - 1) / page * page; }

} // namespace

BOOST_AUTO_TEST_CASE(parse_thp_mode_reads_the_bracketed_word, *boost::unit_test::timeout(30)) {
    BOOST_TEST((page_resource::parse_thp_mode("always [madvise] never") == thp_mode::madvise));
    BOOST_TEST((page_resource::parse_thp_mode("[always] madvise never\n") == thp_mode::always));
    BOOST_TEST((page_resource::parse_thp_mode("always madvise [never]") == thp_mode::never));
    BOOST_TEST((page_resource::parse_thp_mode("") == thp_mode::unsupported));
    BOOST_TEST((page_resource::parse_thp_mode("always madvise never") == thp_mode::unsupported));
    BOOST_TEST((page_resource::parse_thp_mode("[bogus]") == thp_mode::unsupported));
    BOOST_TEST((page_resource::parse_thp_mode("[always") == thp_mode::unsupported));
    BOOST_TEST((page_resource::parse_thp_mode(nullptr) == thp_mode::unsupported));
}

BOOST_AUTO_TEST_CASE(system_values_are_consistent, *boost::unit_test::timeout(30)) {
    BOOST_TEST(page >= 4096u);
    BOOST_TEST((page & (page - 1)) == 0u);
    const std::size_t huge = page_resource::huge_page_size();
    BOOST_TEST_MESSAGE("page " << page << " B, huge page " << huge << " B, THP mode "
                               << static_cast<int>(page_resource::system_thp_mode()));
    if (page_resource::system_thp_mode() == thp_mode::unsupported) {
        BOOST_TEST(huge == 0u);
    } else {
        BOOST_TEST(huge > page);
        BOOST_TEST((huge & (huge - 1)) == 0u);
    }
    const page_resource r;
    BOOST_TEST(r.options().huge_pages == huge_pages_available());
    if (huge != 0) BOOST_TEST(r.options().huge_page_threshold == huge);
    else BOOST_TEST(r.options().huge_page_threshold == 0u); // left as given, no sentinel
    const page_resource raised(page_resource_options{}.with_huge_page_threshold(1));
    if (huge != 0) BOOST_TEST(raised.options().huge_page_threshold == huge);
    const page_resource higher(page_resource_options{}.with_huge_page_threshold(64 * mib));
    BOOST_TEST(higher.options().huge_page_threshold == 64 * mib);
}

BOOST_AUTO_TEST_CASE(every_size_and_alignment_is_honoured_and_unmapped, *boost::unit_test::timeout(120)) {
    page_resource r;
    const std::size_t sizes[] = {0, 1, 100, page - 1, page, page + 1, 3 * page, 64 * kib + 16, mib, 3 * mib + 5};
    std::vector<std::size_t> alignments;
    for (std::size_t a = 1; a <= 8 * mib; a <<= 1) alignments.push_back(a);
    std::uint64_t maps = 0;
    for (std::size_t bytes : sizes) {
        for (std::size_t alignment : alignments) {
            const long before = vm_size_kib();
            void* p = r.allocate(bytes, alignment);
            const long during = vm_size_kib();
            ++maps;
            BOOST_TEST_CONTEXT("bytes " << bytes << ", alignment " << alignment) {
                BOOST_TEST(aligned_to(p, alignment));
                BOOST_TEST(aligned_to(p, page));
                BOOST_TEST(is_mapped(p, pages_of(bytes)));
                expect_stats(r, maps, maps - 1, pages_of(bytes));
                fill_and_check(p, bytes);
                r.deallocate(p, bytes, alignment);
                const long after = vm_size_kib();
                // Exactly the block was mapped: the head and tail cut off for
                // alignment were unmapped at once; and all of it is gone now.
                BOOST_TEST(during - before == static_cast<long>(pages_of(bytes) / 1024));
                BOOST_TEST(after == before);
                BOOST_TEST(!is_mapped(p, page));
                expect_stats(r, maps, maps, 0);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(several_live_blocks_balance_maps_and_unmaps, *boost::unit_test::timeout(60)) {
    page_resource r;
    std::vector<std::pair<void*, std::size_t>> live;
    std::uint64_t bytes_mapped = 0;
    for (std::size_t i = 1; i <= 40; ++i) {
        const std::size_t bytes = i * 12345;
        live.emplace_back(r.allocate(bytes, 64), bytes);
        bytes_mapped += pages_of(bytes);
        fill_and_check(live.back().first, bytes);
    }
    expect_stats(r, 40, 0, bytes_mapped);
    for (auto& [p, bytes] : live) r.deallocate(p, bytes, 64);
    expect_stats(r, 40, 40, 0);
}

BOOST_AUTO_TEST_CASE(large_blocks_are_advised_and_aligned_for_huge_pages, *boost::unit_test::timeout(60)) {
    page_resource r;
    const std::size_t huge = page_resource::huge_page_size();
    const std::size_t bytes = 4 * mib + 16; // as a pool asks: class size + slack
    void* p = r.allocate(bytes, 16);
    const std::string flags = vm_flags_of(p);
    BOOST_TEST_MESSAGE("VmFlags of a " << bytes << " B block: " << flags);
    BOOST_TEST(!flags.empty());
    if (huge_pages_available()) {
        BOOST_TEST(aligned_to(p, huge));
        BOOST_TEST(r.stats().huge_advised + r.stats().advice_refused == 1u);
        if (r.stats().huge_advised == 1u) BOOST_TEST(has_flag(flags, "hg"));
    } else {
        BOOST_TEST_MESSAGE("no transparent huge pages here: checking the fallback only");
        BOOST_TEST(r.stats().huge_advised == 0u);
        BOOST_TEST(!has_flag(flags, "hg"));
    }
    fill_and_check(p, bytes);
    r.deallocate(p, bytes, 16);
    expect_stats(r, 1, 1, 0);

    // Below the threshold: never advised.
    void* small = r.allocate(huge == 0 ? mib : huge - page, 16);
    BOOST_TEST(!has_flag(vm_flags_of(small), "hg"));
    r.deallocate(small, huge == 0 ? mib : huge - page, 16);
    BOOST_TEST(r.stats().huge_advised + r.stats().advice_refused <= 1u);
}

BOOST_AUTO_TEST_CASE(huge_pages_off_falls_back_to_plain_pages, *boost::unit_test::timeout(60)) {
    // The same path as on a system with THP `never` or none: no advice at all.
    page_resource r(page_resource_options{}.with_huge_pages(false));
    BOOST_TEST(!r.options().huge_pages);
    const std::size_t bytes = 8 * mib;
    void* p = r.allocate(bytes, 64);
    BOOST_TEST(!has_flag(vm_flags_of(p), "hg"));
    BOOST_TEST(r.stats().huge_advised == 0u);
    BOOST_TEST(r.stats().advice_refused == 0u);
    fill_and_check(p, bytes);
    r.deallocate(p, bytes, 64);
    expect_stats(r, 1, 1, 0);

    // A threshold above the block: no advice either.
    page_resource high(page_resource_options{}.with_huge_page_threshold(64 * mib));
    void* q = high.allocate(bytes, 64);
    BOOST_TEST(!has_flag(vm_flags_of(q), "hg"));
    BOOST_TEST(high.stats().huge_advised == 0u);
    high.deallocate(q, bytes, 64);
}

BOOST_AUTO_TEST_CASE(populate_faults_every_page_in_before_returning, *boost::unit_test::timeout(60)) {
    const std::size_t bytes = 6 * mib + 3 * page;
    page_resource lazy;
    void* p = lazy.allocate(bytes, 64);
    BOOST_TEST(resident_pages(p, bytes) == 0); // nothing touched yet
    lazy.deallocate(p, bytes, 64);

    for (bool huge : {true, false}) {
        page_resource eager(page_resource_options{}.with_populate(true).with_huge_pages(huge));
        void* q = eager.allocate(bytes, 64);
        BOOST_TEST_CONTEXT("huge pages " << huge) {
            BOOST_TEST(resident_pages(q, bytes) == static_cast<long>(bytes / page));
            // Populated pages read as zero, like any fresh anonymous memory.
            const auto* b = static_cast<const unsigned char*>(q);
            bool zero = true;
            for (std::size_t i = 0; i < bytes; i += page) zero = zero && b[i] == 0;
            BOOST_TEST(zero);
            eager.deallocate(q, bytes, 64);
            expect_stats(eager, 1, 1, 0);
        }
    }
}

BOOST_AUTO_TEST_CASE(errors_surface_as_bad_alloc_and_change_nothing, *boost::unit_test::timeout(30)) {
    page_resource r;
    // Not a power of two, or beyond any address: refused before any mmap.
    for (std::size_t alignment : {std::size_t{0}, std::size_t{3}, std::size_t{48}, page + 1, std::size_t{1} << 63}) {
        BOOST_CHECK_THROW(static_cast<void>(r.allocate(page, alignment)), std::bad_alloc);
    }
    BOOST_CHECK_THROW(static_cast<void>(r.allocate(std::numeric_limits<std::size_t>::max(), 16)), std::bad_alloc);
    // Larger than the whole user address space (2^47 on x86-64): mmap fails.
    BOOST_CHECK_THROW(static_cast<void>(r.allocate(std::size_t{1} << 48, 16)), std::bad_alloc);
    BOOST_CHECK_THROW(static_cast<void>(r.allocate(std::size_t{1} << 47, std::size_t{1} << 30)), std::bad_alloc);
    expect_stats(r, 0, 0, 0);
    // Still usable afterwards.
    void* p = r.allocate(page, 16);
    r.deallocate(p, page, 16);
    expect_stats(r, 1, 1, 0);
}

BOOST_AUTO_TEST_CASE(any_page_resource_frees_any_others_blocks, *boost::unit_test::timeout(30)) {
    page_resource a;
    page_resource b(page_resource_options{}.with_populate(true));
    BOOST_TEST(a.is_equal(b));
    BOOST_TEST((a == b));
    BOOST_TEST(!a.is_equal(*std::pmr::new_delete_resource()));
    void* p = a.allocate(3 * mib, 4096);
    b.deallocate(p, 3 * mib, 4096);
    BOOST_TEST(!is_mapped(p, page));
    BOOST_TEST(a.stats().maps == 1u);
    BOOST_TEST(b.stats().unmaps == 1u);
}

BOOST_AUTO_TEST_CASE(threads_map_and_unmap_concurrently, *boost::unit_test::timeout(120)) {
    page_resource r;
    const int threads = 4;
    const int rounds = zeropool_test::scaled(400, 100);
    zeropool_test::failure_log failures;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            std::vector<std::pair<unsigned char*, std::size_t>> mine;
            for (int i = 0; i < rounds; ++i) {
                const std::size_t bytes = (static_cast<std::size_t>(i % 7) + 1) * 50 * kib + static_cast<std::size_t>(t);
                auto* p = static_cast<unsigned char*>(r.allocate(bytes, 64));
                p[0] = static_cast<unsigned char>(t);
                p[bytes - 1] = static_cast<unsigned char>(i);
                mine.emplace_back(p, bytes);
                if (mine.size() > 3) {
                    auto [q, n] = mine.front();
                    if (q[0] != static_cast<unsigned char>(t)) failures.add("block contents changed");
                    r.deallocate(q, n, 64);
                    mine.erase(mine.begin());
                }
            }
            for (auto [q, n] : mine) r.deallocate(q, n, 64);
        });
    }
    for (auto& th : pool) th.join();
    failures.report();
    const auto total = static_cast<std::uint64_t>(threads) * static_cast<std::uint64_t>(rounds);
    expect_stats(r, total, total, 0);
}

BOOST_AUTO_TEST_CASE(pool_over_page_resource_for_large_classes, *boost::unit_test::timeout(120)) {
    page_resource pages;
    recording_resource small;
    const std::size_t threshold = 2 * mib;
    {
        size_split_resource upstream(threshold, &pages, &small);
        zeropool::sharded_buffer_resource pool(zeropool::pool_config{}, &upstream);
        for (int round = 0; round < 3; ++round) {
            zeropool::buffer big = pool.get(16 * mib);
            zeropool::buffer mid = pool.get(256 * kib);
            fill_and_check(big.data(), big.size());
            fill_and_check(mid.data(), mid.size());
            if (huge_pages_available()) {
                // The data starts 16 bytes into a block aligned for huge pages.
                BOOST_TEST(aligned_to(big.data() - 16, page_resource::huge_page_size()));
            }
            pool.put(std::move(big));
            pool.put(std::move(mid));
        }
        // One block of each class was mapped once and reused: the second and
        // third rounds were pool hits.
        BOOST_TEST(pages.stats().maps == 1u);
        BOOST_TEST(small.allocate_calls() == 1u);
        BOOST_TEST(pool.stats().upstream_allocations == 2u);
        pool.trim();
        BOOST_TEST(pages.stats().unmaps == 1u);
        BOOST_TEST(pages.stats().mapped_bytes == 0u);
    }
    expect_stats(pages, 1, 1, 0);
    expect_balanced(small);
}

BOOST_AUTO_TEST_CASE(preallocate_over_page_resource_leaves_every_page_resident, *boost::unit_test::timeout(120)) {
    page_resource pages;
    recording_resource small;
    {
        size_split_resource upstream(2 * mib, &pages, &small);
        zeropool::sharded_buffer_resource pool(zeropool::pool_config{}, &upstream);
        const std::size_t size = 16 * mib;
        pool.preallocate(2, size);
        BOOST_TEST(pages.stats().maps == 2u);
        auto* p = static_cast<std::byte*>(pool.allocate(size));
        BOOST_TEST(pages.stats().maps == 2u); // a preallocated block
        // Every page of the block is in memory before the caller touches it.
        auto* first_page = reinterpret_cast<std::byte*>(reinterpret_cast<std::uintptr_t>(p) & ~(page - 1));
        BOOST_TEST(resident_pages(first_page, size) == static_cast<long>(size / page));
        pool.deallocate(p, size);
    }
    expect_stats(pages, 2, 2, 0);
    expect_balanced(small);
}
