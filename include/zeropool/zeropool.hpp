// zeropool: umbrella header. C++17.
#ifndef ZEROPOOL_ZEROPOOL_HPP
#define ZEROPOOL_ZEROPOOL_HPP

#include <zeropool/buffer.hpp>
#include <zeropool/config.hpp>
#include <zeropool/default_init_allocator.hpp>
#include <zeropool/idle_releaser.hpp>
#include <zeropool/page_resource.hpp>
#include <zeropool/pool_config.hpp>
#include <zeropool/pool_stats.hpp>
#include <zeropool/pressure_trimmer.hpp>
#include <zeropool/sharded_buffer_resource.hpp>
#include <zeropool/size_split_resource.hpp>

#endif // ZEROPOOL_ZEROPOOL_HPP
