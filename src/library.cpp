// The one source file of libdpone.so itself; the core areas are folded in whole
// (src/CMakeLists.txt). It carries the library's version.
namespace dpone {
const char* library_version() { return DPONE_VERSION; }
}  // namespace dpone
