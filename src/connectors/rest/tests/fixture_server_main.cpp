// dpone_rest_fixture_server: the rest fixtures (fixture_server.hpp) as a process, for the
// end-to-end tests of the real binary.
//   dpone_rest_fixture_server --port-file FILE [--log-file FILE]
// Writes the port to FILE once listening (written to a temporary name, then renamed, so a
// reader never sees a partial number) and serves until SIGTERM or SIGINT.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "connectors/rest/tests/fixture_server.hpp"

int main(int argc, char** argv) {
  std::string port_file, log_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--port-file") == 0)
      port_file = argv[i + 1];
    else if (std::strcmp(argv[i], "--log-file") == 0)
      log_file = argv[i + 1];
  }
  if (port_file.empty()) {
    std::cerr << "usage: dpone_rest_fixture_server --port-file FILE [--log-file FILE]\n";
    return 2;
  }
  // Block the stop signals before the server's threads start, so only sigwait sees them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  dpone::rest_fixture::FixtureServer server(log_file);
  {
    std::ofstream out(port_file + ".tmp");
    out << server.port() << "\n";
  }
  std::filesystem::rename(port_file + ".tmp", port_file);
  int sig = 0;
  sigwait(&stop, &sig);
  return 0;
}
