// Example: zeropool under Boost.Container. boost::container::pmr has its own
// memory_resource class, so a std::pmr resource needs the bridge
// zeropool::boost_resource_adaptor (<zeropool/boost_interop.hpp>). Here Boost's
// unsynchronized_pool_resource carves small nodes out of chunks it takes from
// zeropool, and a large Boost vector takes its storage from zeropool directly.
// Needs the Boost.Container headers and library (1.81 or newer).
// Exit status 0 when the contents are right and the blocks came from zeropool.
#include <zeropool/boost_interop.hpp>
#include <zeropool/zeropool.hpp>

#include <boost/container/pmr/map.hpp>
#include <boost/container/pmr/string.hpp>
#include <boost/container/pmr/unsynchronized_pool_resource.hpp>
#include <boost/container/pmr/vector.hpp>

#include <cstdio>
#include <string>

namespace bpmr = boost::container::pmr;

int main() {
    zeropool::sharded_buffer_resource pool;
    zeropool::boost_resource_adaptor to_boost(&pool);
    {
        bpmr::unsynchronized_pool_resource small_objects(&to_boost);
        bpmr::map<int, bpmr::string> index(&small_objects);
        for (int i = 0; i < 10000; ++i)
            index.emplace(i, ("entry number " + std::to_string(i) + ", long enough for the heap").c_str());

        bpmr::vector<char> big(1 << 20, 'z', &to_boost); // one 1 MiB block from zeropool

        const bool ok = index.size() == 10000 && index.at(4321).find("4321") != bpmr::string::npos &&
                        index.at(4321).get_allocator().resource() == &small_objects && big.back() == 'z' &&
                        big.get_allocator().resource() == &to_boost;
        if (!ok) {
            std::fprintf(stderr, "boost_bridge: wrong contents\n");
            return 1;
        }
    } // Boost's pool gives its chunks back to zeropool

    const zeropool::pool_stats s = pool.stats();
    std::printf("boost_bridge: zeropool made %llu upstream allocations and holds %zu idle buffers\n",
                static_cast<unsigned long long>(s.upstream_allocations), s.idle_blocks);
    if (s.upstream_allocations == 0 || s.idle_blocks == 0) {
        std::fprintf(stderr, "boost_bridge: nothing reached zeropool\n");
        return 1;
    }
    return 0;
}
