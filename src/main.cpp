// pgpivot's entry point: command line -> configuration -> process. Nothing else.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "pgpivot/app/check.hpp"
#include "pgpivot/app/process.hpp"

int main(int argc, char** argv) {
  CLI::App cli{"pgpivot: connection-pooling PostgreSQL proxy with failover routing"};
  pgpivot::app::ProcessOptions options;
  bool check = false;
  bool connect = false;
  bool version = false;
  cli.add_flag("-d,--daemon", options.daemon, "run in the background (needs logfile)");
  cli.add_flag("-v,--verbose", options.verbose, "more logging; repeat for more");
  cli.add_flag("-q,--quiet", options.quiet, "log only warnings and errors");
  cli.add_option("-u,--user", options.user, "switch to this user after start-up");
  cli.add_flag("--check", check, "validate CONFIG and exit (0 valid, 1 errors)");
  cli.add_flag("--connect", connect,
               "with --check: connect to every server and report role, version, replication "
               "and whether failover is possible");
  cli.add_flag("-V,--version", version, "print the version and exit");
  cli.add_option("config", options.config_path, "configuration file (pgpivot.ini)");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return cli.exit(error);
  }
  if (version) {
    std::printf("pgpivot %s\n", PGPIVOT_VERSION);
    return 0;
  }
  if (options.config_path.empty()) {
    std::fprintf(stderr, "pgpivot: a configuration file is required\n%s", cli.help().c_str());
    return 1;
  }
  if (connect && !check) {
    std::fprintf(stderr, "pgpivot: --connect goes with --check\n");
    return 1;
  }
  if (check) {
    return pgpivot::app::runCheck(options.config_path, connect);
  }
  return pgpivot::app::runProcess(options);
}
