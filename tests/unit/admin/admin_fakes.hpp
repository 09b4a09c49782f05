// Test doubles for the admin console: a FakeBackend that answers from a canned Snapshot
// (at once, or when the test releases it) and records every call, a ReplySink that keeps
// what it is given, and decode(), which parses console bytes back into results with the
// proto views so tests assert on columns, rows, tags and SQLSTATEs, not on raw bytes.
#pragma once

#include <catch2/catch.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pgpivot/admin/backend.hpp"
#include "pgpivot/admin/console.hpp"
#include "pgpivot/proto/frame.hpp"
#include "pgpivot/proto/messages.hpp"

namespace pgpivot::admin::test {

class FakeBackend final : public AdminBackend {
 public:
  Snapshot data;
  bool hold = false;  // keep completions until release()
  std::function<Result<CommandOutput>(const Command&)> on_run = [](const Command&) {
    return Result<CommandOutput>(CommandOutput{});
  };
  std::vector<Parts> snapshot_requests;
  std::vector<Command> commands;

  void snapshot(const Parts& parts, Completion<Snapshot> done) override {
    snapshot_requests.push_back(parts);
    if (hold) {
      held_snapshots_.push_back(std::move(done));
      return;
    }
    done(data);
  }

  void run(const Command& command, Completion<CommandOutput> done) override {
    commands.push_back(command);
    if (hold) {
      held_commands_.push_back({command, std::move(done)});
      return;
    }
    done(on_run(command));
  }

  std::size_t heldCount() const { return held_snapshots_.size() + held_commands_.size(); }

  // Completes the oldest held call.
  void releaseOne() {
    if (!held_snapshots_.empty()) {
      auto done = std::move(held_snapshots_.front());
      held_snapshots_.erase(held_snapshots_.begin());
      done(data);
      return;
    }
    REQUIRE_FALSE(held_commands_.empty());
    auto held = std::move(held_commands_.front());
    held_commands_.erase(held_commands_.begin());
    held.done(on_run(held.command));
  }

  // Destroys held completions without invoking them (a buggy backend).
  void dropAll() {
    held_snapshots_.clear();
    held_commands_.clear();
  }

 private:
  struct HeldCommand {
    Command command;
    Completion<CommandOutput> done;
  };
  std::vector<Completion<Snapshot>> held_snapshots_;
  std::vector<HeldCommand> held_commands_;
};

class RecordingSink final : public ReplySink {
 public:
  std::vector<std::string> replies;
  void onAdminReply(std::string bytes) override { replies.push_back(std::move(bytes)); }
};

struct AnswerColumn {
  std::string name;
  uint32_t type_oid = 0;
};

// One statement's answer, as a client would see it.
struct Answer {
  std::vector<AnswerColumn> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
  std::vector<std::string> notices;  // message + "|" + detail
  std::string tag;                   // CommandComplete; empty for an error
  std::string sqlstate;              // ErrorResponse
  std::string error;
  bool empty_query = false;

  std::vector<std::string> columnNames() const {
    std::vector<std::string> names;
    for (const auto& c : columns) {
      names.push_back(c.name);
    }
    return names;
  }
  // The cell of `row` under column `name`.
  std::optional<std::string> cell(std::size_t row, const std::string& name) const {
    for (std::size_t i = 0; i < columns.size(); ++i) {
      if (columns[i].name == name) {
        return rows.at(row).at(i);
      }
    }
    FAIL("no column " << name);
    return std::nullopt;
  }
};

constexpr uint32_t kText = 25;
constexpr uint32_t kInt8 = 20;

// Parses console output into answers; every byte must belong to a well-formed message of
// a kind the console may send, and no ReadyForQuery may be among them.
inline std::vector<Answer> decode(std::string_view bytes) {
  std::vector<Answer> answers;
  Answer current;
  while (!bytes.empty()) {
    proto::FrameView f;
    std::size_t consumed = 0;
    REQUIRE(proto::nextFrame(bytes, proto::Limits{}, f, consumed) == proto::Decode::kFrame);
    bytes.remove_prefix(consumed);
    switch (f.tag) {
      case 'T': {
        auto fields = proto::parseRowDescription(f.body);
        REQUIRE(fields.has_value());
        for (const auto& field : *fields) {
          current.columns.push_back({std::string(field.name), field.type_oid});
        }
        break;
      }
      case 'D': {
        auto values = proto::parseDataRow(f.body);
        REQUIRE(values.has_value());
        REQUIRE(values->size() == current.columns.size());
        std::vector<std::optional<std::string>> row;
        for (const auto& v : *values) {
          row.push_back(v ? std::optional<std::string>(std::string(*v)) : std::nullopt);
        }
        current.rows.push_back(std::move(row));
        break;
      }
      case 'N': {
        auto fields = proto::parseErrorFields(f.body);
        REQUIRE(fields.has_value());
        current.notices.push_back(std::string(fields->message) + "|" + std::string(fields->detail));
        break;
      }
      case 'C': {
        auto tag = proto::parseCommandComplete(f.body);
        REQUIRE(tag.has_value());
        current.tag = std::string(*tag);
        answers.push_back(std::move(current));
        current = Answer{};
        break;
      }
      case 'E': {
        auto fields = proto::parseErrorFields(f.body);
        REQUIRE(fields.has_value());
        CHECK(fields->severity == "ERROR");
        current.sqlstate = std::string(fields->sqlstate);
        current.error = std::string(fields->message);
        answers.push_back(std::move(current));
        current = Answer{};
        break;
      }
      case 'I':
        current.empty_query = true;
        answers.push_back(std::move(current));
        current = Answer{};
        break;
      default:
        FAIL("unexpected message '" << f.tag << "'");
    }
  }
  REQUIRE(current.columns.empty());  // a RowDescription without CommandComplete
  return answers;
}

// Runs `query` synchronously (the backend must not hold) and decodes the answers.
inline std::vector<Answer> run(Console& console, std::string_view query, bool admin = true) {
  RecordingSink sink;
  auto bytes = console.execute(query, Caller{admin ? "admin" : "stats", admin}, sink);
  REQUIRE(bytes.has_value());
  REQUIRE(sink.replies.empty());
  return decode(*bytes);
}

inline Answer runOne(Console& console, std::string_view query, bool admin = true) {
  auto answers = run(console, query, admin);
  REQUIRE(answers.size() == 1);
  return answers.front();
}

}  // namespace pgpivot::admin::test
