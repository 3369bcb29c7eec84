// The TLS model of zeropool in a shared object: a program may dlopen() a
// module that contains zeropool late, whatever static TLS glibc has left, so
// the module must not need static TLS (DF_STATIC_TLS: the flag that an
// initial-exec access in a shared object sets, and that makes dlopen() fail
// once glibc's static TLS surplus is used up). Executables keep initial-exec
// (src/thread_registry.hpp).
#define BOOST_TEST_MODULE tls_model
#include <boost/test/unit_test.hpp>

#include <dlfcn.h>
#include <elf.h>
#include <link.h>

namespace {

// True when the loaded module `handle` has DF_STATIC_TLS in its DT_FLAGS.
bool needs_static_tls(void* handle) {
    link_map* map = nullptr;
    BOOST_REQUIRE(dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0);
    for (const ElfW(Dyn)* d = map->l_ld; d->d_tag != DT_NULL; ++d)
        if (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_STATIC_TLS) != 0) return true;
    return false;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_module_with_zeropool_loads_late_and_needs_no_static_tls, *boost::unit_test::timeout(60)) {
    void* handle = dlopen(ZEROPOOL_TLS_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    BOOST_REQUIRE_MESSAGE(handle != nullptr, "dlopen: " << dlerror());
    BOOST_TEST(!needs_static_tls(handle));
    using round_trip_fn = int (*)();
    auto round_trip = reinterpret_cast<round_trip_fn>(dlsym(handle, "zeropool_plugin_round_trip"));
    BOOST_REQUIRE(round_trip != nullptr);
    BOOST_TEST(round_trip() == 0);
    BOOST_TEST(dlclose(handle) == 0);
}
