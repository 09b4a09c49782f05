#include "table.hpp"

#include <ctime>

#include "pgpivot/core/assert.hpp"
#include "pgpivot/proto/messages.hpp"

namespace pgpivot::admin {
namespace {

// pg_type OIDs and sizes (PostgreSQL's pg_type.dat).
constexpr uint32_t kTextOid = 25;
constexpr uint32_t kInt8Oid = 20;

}  // namespace

Table::Table(std::string& out, std::span<const Column> columns) : out_(out), columns_(columns) {
  std::vector<proto::FieldDescription> fields;
  fields.reserve(columns.size());
  for (const Column& column : columns) {
    proto::FieldDescription field;
    field.name = column.name;
    if (column.type == ColumnType::kInt8) {
      field.type_oid = kInt8Oid;
      field.type_size = 8;
    } else {
      field.type_oid = kTextOid;
      field.type_size = -1;
    }
    fields.push_back(field);
  }
  proto::writeRowDescription(out_, fields);
  cells_.reserve(columns.size());
}

Table& Table::text(std::string_view value) {
  cells_.emplace_back(std::string(value));
  return *this;
}

Table& Table::textOrNull(std::string_view value) {
  return value.empty() ? null() : text(value);
}

Table& Table::number(int64_t value) {
  cells_.emplace_back(std::to_string(value));
  return *this;
}

Table& Table::null() {
  cells_.emplace_back(std::nullopt);
  return *this;
}

void Table::endRow() {
  PGPIVOT_CHECK(cells_.size() == columns_.size());
  std::vector<proto::Value> values;
  values.reserve(cells_.size());
  for (const auto& cell : cells_) {
    values.push_back(cell ? proto::Value(*cell) : proto::Value(std::nullopt));
  }
  proto::writeDataRow(out_, values);
  cells_.clear();
  ++rows_;
}

std::string formatTimestamp(int64_t unix_us) {
  if (unix_us <= 0) {
    return {};
  }
  const std::time_t seconds = static_cast<std::time_t>(unix_us / 1'000'000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  const std::size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return std::string(buf, n);
}

}  // namespace pgpivot::admin
