// Running a query's statements one after another. A statement that needs the backend
// leaves its Execution waiting on a Completion keyed by the execution's ticket; the
// completion renders the answer and advances to the next statement. Whether the backend
// completes at once (inside the call) or later, the same code path runs: advance() loops
// while statements complete synchronously and returns as soon as one is left waiting.
#include "pgpivot/admin/console.hpp"

#include <utility>
#include <vector>

#include "command.hpp"
#include "pgpivot/proto/messages.hpp"
#include "show.hpp"

namespace pgpivot::admin {

struct Console::Execution {
  uint64_t ticket = 0;
  Caller caller;
  ReplySink* sink = nullptr;  // null once the session cancelled
  std::vector<Statement> statements;
  std::size_t next = 0;    // the statement running or to run
  std::string out;         // the answer so far
  bool waiting = false;    // a Completion for statements[next] is outstanding
  bool advancing = false;  // advance() is on the stack for this execution
};

namespace {

constexpr std::string_view kPrefix = "pgpivot: ";

void writeError(std::string& out, const Error& error) {
  std::string message = error.message;
  if (message.rfind("pgpivot:", 0) != 0) {
    message.insert(0, kPrefix);
  }
  proto::writeErrorResponse(out, proto::severity::kError, error.sqlstate, message);
}

}  // namespace

Console::Console(AdminBackend& backend) : backend_(backend) {}
Console::~Console() = default;

std::optional<std::string> Console::execute(std::string_view query, const Caller& caller,
                                            ReplySink& sink) {
  auto statements = parseQuery(query);
  std::string out;
  if (!statements) {
    writeError(out, statements.error());
    return out;
  }
  if (statements->empty()) {
    proto::writeEmptyQueryResponse(out);
    return out;
  }
  const uint64_t ticket = next_ticket_++;
  auto owned = std::make_unique<Execution>();
  Execution& exec = *owned;
  exec.ticket = ticket;
  exec.caller = caller;
  exec.sink = &sink;
  exec.statements = std::move(*statements);
  executions_.emplace(ticket, std::move(owned));
  if (!advance(exec)) {
    return std::nullopt;
  }
  out = std::move(exec.out);
  executions_.erase(ticket);
  return out;
}

void Console::cancel(ReplySink& sink) {
  for (auto it = executions_.begin(); it != executions_.end();) {
    Execution& exec = *it->second;
    if (exec.sink != &sink) {
      ++it;
      continue;
    }
    exec.sink = nullptr;
    // An execution that advance() is running is erased by whoever called advance(); one
    // waiting on the backend is dropped now, and its completion will find no ticket.
    it = exec.advancing ? std::next(it) : executions_.erase(it);
  }
}

bool Console::advance(Execution& exec) {
  exec.advancing = true;
  // A cancelled execution (its session is closing) runs no further statements.
  while (!exec.waiting && exec.sink != nullptr && exec.next < exec.statements.size()) {
    startStatement(exec);
  }
  exec.advancing = false;
  return !exec.waiting;
}

void Console::startStatement(Execution& exec) {
  const Statement& statement = exec.statements[exec.next];
  const uint64_t ticket = exec.ticket;
  if (const auto* show = std::get_if<ShowKind>(&statement.what)) {
    if (!needsSnapshot(*show)) {
      renderShow(exec.out, *show, Snapshot{});
      proto::writeCommandComplete(exec.out, "SHOW");
      ++exec.next;
      return;
    }
    exec.waiting = true;
    backend_.snapshot(partsFor(*show), Completion<Snapshot>([this, ticket](Result<Snapshot> r) {
                        onSnapshot(ticket, std::move(r));
                      }));
    return;
  }
  const Command& stored = std::get<Command>(statement.what);
  if (!exec.caller.admin) {
    writeError(exec.out,
               Error{code::kInsufficientPrivilege,
                     "pgpivot: admin access needed for " + std::string(commandName(stored.kind)) +
                         " (user \"" + exec.caller.user + "\" may only use SHOW)"});
    exec.next = exec.statements.size();
    return;
  }
  Command command = stored;
  command.caller = exec.caller.user;
  exec.waiting = true;
  backend_.run(command, Completion<CommandOutput>([this, ticket](Result<CommandOutput> r) {
                 onCommandDone(ticket, std::move(r));
               }));
}

void Console::onSnapshot(uint64_t ticket, Result<Snapshot> snapshot) {
  const auto it = executions_.find(ticket);
  if (it == executions_.end() || !it->second->waiting) {
    return;  // the session left meanwhile
  }
  Execution& exec = *it->second;
  if (snapshot) {
    renderShow(exec.out, std::get<ShowKind>(exec.statements[exec.next].what), *snapshot);
    proto::writeCommandComplete(exec.out, "SHOW");
    ++exec.next;
  } else {
    writeError(exec.out, snapshot.error());
    exec.next = exec.statements.size();
  }
  exec.waiting = false;
  resume(ticket);
}

void Console::onCommandDone(uint64_t ticket, Result<CommandOutput> output) {
  const auto it = executions_.find(ticket);
  if (it == executions_.end() || !it->second->waiting) {
    return;
  }
  Execution& exec = *it->second;
  if (output) {
    for (const std::string& notice : output->notices) {
      proto::writeNoticeResponse(exec.out, proto::severity::kNotice, "00000", notice);
    }
    if (output->report) {
      renderReport(exec.out, *output->report);
    }
    proto::writeCommandComplete(exec.out, commandTag(exec.statements[exec.next]));
    ++exec.next;
  } else {
    writeError(exec.out, output.error());
    exec.next = exec.statements.size();
  }
  exec.waiting = false;
  resume(ticket);
}

void Console::resume(uint64_t ticket) {
  const auto it = executions_.find(ticket);
  if (it == executions_.end() || it->second->advancing) {
    return;  // a synchronous completion: the advance() below us carries on
  }
  Execution& exec = *it->second;
  if (!advance(exec)) {
    return;
  }
  ReplySink* sink = exec.sink;
  std::string out = std::move(exec.out);
  // Erase first: the sink may send ReadyForQuery and run the session's next query at once.
  executions_.erase(it);
  if (sink != nullptr) {
    sink->onAdminReply(std::move(out));
  }
}

}  // namespace pgpivot::admin
