#include "support/console_cluster.hpp"

#include <catch2/catch.hpp>

namespace pgpivot::test {
namespace {

Pgpivot::Options optionsFor(const TwoNodeCluster& cluster, const std::string& log, OnCluster on,
                            const std::map<std::string, std::string>& settings) {
  Pgpivot::Options options = pgpivotOn(cluster, on.withLog(log));
  for (const auto& [key, value] : settings) {
    options.settings[key] = value;
  }
  return options;
}

}  // namespace

ConsoleCluster::ConsoleCluster(const std::string& tag, OnCluster on,
                               const std::map<std::string, std::string>& settings)
    : events(scratchPath(tag)), pgpivot(optionsFor(cluster, events.path, std::move(on), settings)) {
  pgpivot.start();
  admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  INFO(errorOf(admin.get()));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  waitSteady(admin.get());
}

std::string ConsoleCluster::switchover() {
  std::string refusal;
  (void)eventually(std::chrono::seconds(20), [&] {
    Res result(PQexec(admin.get(), "SWITCHOVER main"));
    refusal = PQresultErrorMessage(result.get());
    return PQresultStatus(result.get()) == PGRES_TUPLES_OK;
  });
  return refusal;
}

}  // namespace pgpivot::test
