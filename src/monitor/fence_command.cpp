#include "fence_command.hpp"

#include <csignal>
#include <cstring>

extern char** environ;

namespace pgpivot::monitor {
namespace {

std::string shellQuote(std::string_view value) {
  std::string out = "'";
  for (const char c : value) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

constexpr uint64_t kOutputGraceMs = 200;  // after the exit, for the last lines to arrive
constexpr std::size_t kMaxLine = 4096;

}  // namespace

std::string substituteFenceCommand(std::string_view command, const FenceTarget& target) {
  std::string out;
  for (std::size_t i = 0; i < command.size(); ++i) {
    const char c = command[i];
    if (c != '%' || i + 1 == command.size()) {
      out += c;
      continue;
    }
    switch (command[++i]) {
      case 'h':
        out += shellQuote(target.host);
        break;
      case 'p':
        out += std::to_string(target.port);
        break;
      case 'c':
        out += shellQuote(target.cluster);
        break;
      case '%':
        out += '%';
        break;
      default:
        out += '%';
        out += command[i];
    }
  }
  return out;
}

// One run: the process, its two output pipes and a timer, all closed before it is freed.
struct FenceCommand::Run {
  uv_process_t process{};
  uv_pipe_t out{};
  uv_pipe_t err{};
  uv_timer_t timer{};
  int open_handles = 0;
  FenceCommand* owner = nullptr;  // null once the owner is gone
  Line on_line;
  Done on_done;
  FenceOutcome outcome;
  uint64_t started_ms = 0;
  bool exited = false;
  bool reported = false;
  bool out_eof = false;
  bool err_eof = false;
  std::string out_partial;
  std::string err_partial;

  void closeHandle(uv_handle_t* h) {
    if (h->loop != nullptr && !uv_is_closing(h)) {
      uv_close(h, [](uv_handle_t* handle) noexcept {
        Run* run = static_cast<Run*>(handle->data);
        if (--run->open_handles == 0) {
          delete run;
        }
      });
    }
  }
  void closeAll() {
    closeHandle(reinterpret_cast<uv_handle_t*>(&timer));
    closeHandle(reinterpret_cast<uv_handle_t*>(&out));
    closeHandle(reinterpret_cast<uv_handle_t*>(&err));
    closeHandle(reinterpret_cast<uv_handle_t*>(&process));  // skipped if never initialized
  }
  void line(bool is_err, std::string_view text) {
    if (owner != nullptr && on_line) {
      on_line(is_err ? "stderr" : "stdout", text);
    }
  }
  void flushPartial(bool is_err) {
    std::string& partial = is_err ? err_partial : out_partial;
    if (!partial.empty()) {
      line(is_err, partial);
      partial.clear();
    }
  }
  void finish() {
    if (reported) {
      return;
    }
    reported = true;
    flushPartial(false);
    flushPartial(true);
    outcome.duration_ms = uv_now(timer.loop) - started_ms;
    if (outcome.timed_out) {
      outcome.error = "killed after its timeout (" + std::to_string(outcome.duration_ms) + " ms)";
    } else if (outcome.term_signal != 0) {
      outcome.error = "killed by signal " + std::to_string(outcome.term_signal);
    } else if (outcome.exit_status != 0) {
      outcome.error = "exit status " + std::to_string(outcome.exit_status);
    }
    FenceCommand* o = owner;
    Done done = std::move(on_done);
    if (o != nullptr) {
      o->run_ = nullptr;
      owner = nullptr;
    }
    closeAll();
    if (o != nullptr && done) {
      done(outcome);
    }
  }
  void maybeFinish() {
    if (exited && out_eof && err_eof) {
      finish();
    }
  }
};

FenceCommand::~FenceCommand() {
  if (run_ == nullptr) {
    return;
  }
  Run* run = run_;
  run_ = nullptr;
  run->owner = nullptr;
  if (!run->exited && run->process.pid > 0) {
    uv_process_kill(&run->process, SIGKILL);
  }
  run->reported = true;
  run->closeAll();
}

bool FenceCommand::run(const std::string& command, const FenceTarget& target, uint64_t timeout_ms,
                       Line on_line, Done on_done) {
  if (run_ != nullptr) {
    return false;
  }
  auto* run = new Run;
  run->owner = this;
  run->on_line = std::move(on_line);
  run->on_done = std::move(on_done);
  run->started_ms = uv_now(loop_);
  for (uv_handle_t* h :
       {reinterpret_cast<uv_handle_t*>(&run->timer), reinterpret_cast<uv_handle_t*>(&run->out),
        reinterpret_cast<uv_handle_t*>(&run->err)}) {
    h->data = run;
  }
  uv_timer_init(loop_, &run->timer);
  uv_pipe_init(loop_, &run->out, 0);
  uv_pipe_init(loop_, &run->err, 0);
  run->open_handles = 3;
  run_ = run;

  const std::string substituted = substituteFenceCommand(command, target);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "PGPIVOT_", 8) != 0) {
      env_strings.emplace_back(*e);
    }
  }
  env_strings.push_back("PGPIVOT_CLUSTER=" + target.cluster);
  env_strings.push_back("PGPIVOT_NODE_HOST=" + target.host);
  env_strings.push_back("PGPIVOT_NODE_PORT=" + std::to_string(target.port));
  env_strings.push_back("PGPIVOT_FAILOVER_ID=" + target.failover_id);
  env_strings.push_back("PGPIVOT_EPOCH=" + std::to_string(target.epoch));
  std::vector<char*> env;
  for (std::string& s : env_strings) {
    env.push_back(s.data());
  }
  env.push_back(nullptr);
  std::string sh = "/bin/sh";
  std::string dash_c = "-c";
  std::string cmd = substituted;
  char* args[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};

  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(&run->out);
  stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[2].data.stream = reinterpret_cast<uv_stream_t*>(&run->err);
  uv_process_options_t options{};
  options.file = sh.c_str();
  options.args = args;
  options.env = env.data();
  options.stdio_count = 3;
  options.stdio = stdio;
  options.exit_cb = [](uv_process_t* p, int64_t status, int signal) noexcept {
    Run* r = static_cast<Run*>(p->data);
    r->exited = true;
    r->outcome.exit_status = status;
    r->outcome.term_signal = r->outcome.timed_out ? 0 : signal;
    if (r->reported) {
      return;
    }
    // The last lines may still be in the pipes (or a child of the shell holds them open).
    uv_timer_start(
        &r->timer, [](uv_timer_t* t) noexcept { static_cast<Run*>(t->data)->finish(); },
        kOutputGraceMs, 0);
    r->maybeFinish();
  };
  run->process.data = run;
  const int rc = uv_spawn(loop_, &run->process, &options);
  if (rc != 0) {
    run->outcome.error = std::string("cannot run it: ") + uv_strerror(rc);
    run->exited = true;
    run->out_eof = run->err_eof = true;
    if (run->process.loop != nullptr) {
      run->process.data = run;
      run->open_handles += 1;  // initialized by the failed uv_spawn: closed like the others
    }
    run->outcome.started = false;
    run->finish();
    return true;
  }
  run->process.data = run;
  run->open_handles += 1;
  run->outcome.started = true;
  const auto on_read = [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
    Run* r = static_cast<Run*>(s->data);
    const bool is_err = s == reinterpret_cast<uv_stream_t*>(&r->err);
    std::string& partial = is_err ? r->err_partial : r->out_partial;
    if (nread > 0) {
      partial.append(buf->base, static_cast<std::size_t>(nread));
      std::size_t start = 0;
      for (std::size_t nl = partial.find('\n'); nl != std::string::npos;
           nl = partial.find('\n', start)) {
        r->line(is_err, std::string_view(partial).substr(start, nl - start));
        start = nl + 1;
      }
      partial.erase(0, start);
      if (partial.size() > kMaxLine) {
        r->line(is_err, partial);
        partial.clear();
      }
    }
    delete[] buf->base;
    if (nread < 0) {
      uv_read_stop(s);
      (is_err ? r->err_eof : r->out_eof) = true;
      r->flushPartial(is_err);
      r->maybeFinish();
    }
  };
  const auto alloc = [](uv_handle_t*, size_t suggested, uv_buf_t* buf) noexcept {
    buf->base = new char[suggested];
    buf->len = static_cast<decltype(buf->len)>(suggested);
  };
  uv_read_start(reinterpret_cast<uv_stream_t*>(&run->out), alloc, on_read);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&run->err), alloc, on_read);
  uv_timer_start(
      &run->timer,
      [](uv_timer_t* t) noexcept {
        Run* r = static_cast<Run*>(t->data);
        if (r->exited) {
          r->finish();  // the output grace after the exit
          return;
        }
        r->outcome.timed_out = true;
        uv_process_kill(&r->process, SIGKILL);  // by its pid; exit_cb follows
      },
      timeout_ms, 0);
  return true;
}

}  // namespace pgpivot::monitor
