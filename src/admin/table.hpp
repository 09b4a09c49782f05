// Writing one typed result set (private to admin/): RowDescription from a fixed column
// list, then one DataRow per row(). Cells are text format, as psql and every driver read
// them. A row with the wrong number of cells is a pgpivot bug (PGPIVOT_CHECK).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pgpivot::admin {

enum class ColumnType { kText, kInt8 };

struct Column {
  std::string_view name;  // a string literal: RowDescription only views it
  ColumnType type = ColumnType::kText;
};

class Table final {
 public:
  // Writes the RowDescription to `out` at once.
  Table(std::string& out, std::span<const Column> columns);

  Table& text(std::string_view value);
  Table& textOrNull(std::string_view value);  // empty string: NULL
  Table& number(int64_t value);
  Table& null();
  // Writes the DataRow of the cells added since the last endRow().
  void endRow();

  // Number of rows written so far.
  [[nodiscard]] std::size_t rows() const { return rows_; }

 private:
  std::string& out_;
  std::span<const Column> columns_;
  std::vector<std::optional<std::string>> cells_;
  std::size_t rows_ = 0;
};

// Unix microseconds as PgBouncer prints times: "2024-05-01 12:34:56 UTC"; 0 is "".
std::string formatTimestamp(int64_t unix_us);

}  // namespace pgpivot::admin
