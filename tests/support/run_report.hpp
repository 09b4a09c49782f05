// The result set a SWITCHOVER, DRILL or FAILOVER answers with (one row per step or check),
// as the pg tests read it: rows by column name, and the whole table as text for INFO.
#pragma once

#include <libpq-fe.h>

#include <map>
#include <string>
#include <vector>

namespace pgpivot::test {

struct RunReport {
  std::vector<std::map<std::string, std::string>> rows;
  std::string text;  // for INFO

  const std::map<std::string, std::string>* row(const std::string& step) const {
    for (const auto& r : rows) {
      if (r.at("step") == step) {
        return &r;
      }
    }
    return nullptr;
  }
  // The check row (a pre-check of an accepted run is a "precheck" step, a refused run's
  // and the outcome's are "check" rows) whose detail starts with `name`.
  const std::map<std::string, std::string>* check(const std::string& name) const {
    for (const auto& r : rows) {
      if ((r.at("step") == "check" || r.at("step") == "precheck") &&
          r.at("detail").rfind(name + ":", 0) == 0) {
        return &r;
      }
    }
    return nullptr;
  }
};

inline RunReport toRunReport(PGresult* result) {
  RunReport report;
  for (int r = 0; r < PQntuples(result); ++r) {
    std::map<std::string, std::string> row;
    for (int c = 0; c < PQnfields(result); ++c) {
      row[PQfname(result, c)] = PQgetvalue(result, r, c);
      report.text += std::string(PQfname(result, c)) + "=" + PQgetvalue(result, r, c) + " ";
    }
    report.text += "\n";
    report.rows.push_back(std::move(row));
  }
  return report;
}

}  // namespace pgpivot::test
