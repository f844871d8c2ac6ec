// The process allocator, named in `dpone --version`. With jemalloc (the default build, see
// src/cli/CMakeLists.txt) this file also holds its tuning: the environment's MALLOC_CONF
// still overrides it, for operators who need to.
#include "cli/commands.hpp"

#ifdef DPONE_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>

// Read by jemalloc at its first allocation.
// - background_thread:false: dpone runs are short batch processes; no purging thread.
// - dirty_decay_ms: unused pages go back to the OS within a second, so peak RSS tracks the
//   bounded working set (queues, batches, librdkafka's in-flight events), not history.
extern "C" {
const char* malloc_conf = "background_thread:false,dirty_decay_ms:1000,muzzy_decay_ms:0";
}
#endif

namespace dpone::cli {

std::string allocator_name() {
#ifdef DPONE_WITH_JEMALLOC
  const char* version = nullptr;
  size_t size = sizeof(version);
  if (mallctl("version", &version, &size, nullptr, 0) == 0 && version)
    return "jemalloc " + std::string(version).substr(0, std::string(version).find('-'));
  return "jemalloc";
#else
  return "system malloc";
#endif
}

}  // namespace dpone::cli
