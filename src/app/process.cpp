#include "pgpivot/app/process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "pgpivot/app/systemd_notify.hpp"
#include "pgpivot/app/worker.hpp"
#include "pgpivot/config/parser.hpp"
#include "pgpivot/log/log.hpp"
#include "pgpivot/monitor/health_monitor.hpp"
#include "pgpivot/net/mailbox.hpp"
#include "pgpivot/pool/shared_limits.hpp"

namespace pgpivot::app {

namespace {

// Reads config and auth file; on any error logs every diagnostic and returns nulls.
struct Loaded {
  ConfigPtr config;
  AuthFilePtr auth_file;
};

Loaded loadAll(const std::string& path, bool at_startup,
               std::vector<std::string>* collected = nullptr) {
  auto result = config::loadConfig(path);
  for (const auto& diagnostic : result.diagnostics) {
    if (collected != nullptr) {
      collected->push_back(diagnostic.toString());
    }
    if (at_startup) {
      std::fprintf(stderr, "%s\n", diagnostic.toString().c_str());
    } else if (diagnostic.level == config::Diagnostic::Level::kError) {
      PGPIVOT_LOG_ERROR("{}", diagnostic.toString());
    } else {
      PGPIVOT_LOG_WARN("{}", diagnostic.toString());
    }
  }
  if (!result.ok()) {
    return {};
  }
  Loaded loaded;
  auto config = std::make_shared<config::Config>(std::move(result.config));
  if (!config->auth_file.empty()) {
    std::vector<std::string> warnings;
    auto auth_file = auth::loadAuthFile(config->auth_file, warnings);
    for (const auto& warning : warnings) {
      if (at_startup) {
        std::fprintf(stderr, "%s\n", warning.c_str());
      } else {
        PGPIVOT_LOG_WARN("{}", warning);
      }
    }
    if (!auth_file) {
      if (collected != nullptr) {
        collected->push_back(auth_file.error().message);
      }
      if (at_startup) {
        std::fprintf(stderr, "%s\n", auth_file.error().message.c_str());
      } else {
        PGPIVOT_LOG_ERROR("{}", auth_file.error().message);
      }
      return {};
    }
    loaded.auth_file = std::make_shared<const auth::AuthFile>(std::move(*auth_file));
  }
  loaded.config = std::move(config);
  return loaded;
}

bool daemonize() {
  const pid_t pid = fork();
  if (pid < 0) {
    return false;
  }
  if (pid > 0) {
    _exit(0);
  }
  setsid();
  const int null_fd = open("/dev/null", O_RDWR);
  if (null_fd >= 0) {
    dup2(null_fd, STDIN_FILENO);
    dup2(null_fd, STDOUT_FILENO);
    dup2(null_fd, STDERR_FILENO);
    if (null_fd > STDERR_FILENO) {
      close(null_fd);
    }
  }
  return true;
}

bool switchUser(const std::string& name) {
  const passwd* pw = getpwnam(name.c_str());
  if (pw == nullptr) {
    std::fprintf(stderr, "pgpivot: unknown user %s\n", name.c_str());
    return false;
  }
  if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
      setuid(pw->pw_uid) != 0) {
    std::perror("pgpivot: cannot switch user");
    return false;
  }
  return true;
}

// The main thread's loop: signals in, mailbox posts out.
class Supervisor {
 public:
  Supervisor(const ProcessOptions& options, ConfigPtr config, AuthFilePtr auth_file,
             std::vector<Worker*> workers)
      : options_(options),
        config_(std::move(config)),
        auth_file_(std::move(auth_file)),
        workers_(std::move(workers)) {}

  void run() {
    uv_loop_init(&loop_);
    (void)mailbox_.init(&loop_);
    watch(sighup_, SIGHUP);
    watch(sigint_, SIGINT);
    watch(sigterm_, SIGTERM);
    notifyReady();  // only now: a SIGHUP before watch() would have ended the process
    uv_timer_init(&loop_, &done_timer_);
    done_timer_.data = this;
    uv_timer_start(
        &done_timer_, [](uv_timer_t* t) noexcept { static_cast<Supervisor*>(t->data)->poll(); }, 50,
        50);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }

 private:
  void watch(uv_signal_t& handle, int signum) {
    uv_signal_init(&loop_, &handle);
    handle.data = this;
    uv_signal_start(
        &handle,
        [](uv_signal_t* h, int sig) noexcept { static_cast<Supervisor*>(h->data)->onSignal(sig); },
        signum);
  }

  void onSignal(int signum) {
    if (signum == SIGHUP) {
      notifyReloading();
      (void)reload();
      notifyReady();
      return;
    }
    const bool immediate = signum == SIGTERM;
    notifyStopping();
    PGPIVOT_LOG_INFO("got {}: {}", signum == SIGTERM ? "SIGTERM" : "SIGINT",
                     immediate ? "shutting down now" : "waiting for clients, then shutting down");
    shutdown(immediate);
  }

 public:
  // The admin console's RELOAD and SHUTDOWN, from any worker thread.
  void post(std::function<void()> task) { mailbox_.post(std::move(task)); }

  Result<std::vector<std::string>> reload() {
    PGPIVOT_LOG_INFO("reloading {}", options_.config_path);
    std::vector<std::string> warnings;
    Loaded loaded = loadAll(options_.config_path, false, &warnings);
    if (!loaded.config) {
      PGPIVOT_LOG_ERROR("reload refused: the new configuration has errors; keeping the old one");
      std::string message = "pgpivot: reload refused, the old configuration stays:";
      for (const auto& warning : warnings) {
        message += "\n" + warning;
      }
      return fail(sqlstate::kConfigFileError, message);
    }
    if (loaded.config->listen_addr != config_->listen_addr ||
        loaded.config->listen_port != config_->listen_port ||
        loaded.config->unix_socket_dir != config_->unix_socket_dir) {
      PGPIVOT_LOG_WARN("listen_addr, listen_port and unix_socket_dir change only on restart");
    }
    log::setVerbosity(std::max(options_.verbose, loaded.config->verbose), options_.quiet);
    config_ = loaded.config;
    auth_file_ = loaded.auth_file;
    for (Worker* worker : workers_) {
      worker->postReload(loaded.config, loaded.auth_file);
    }
    return warnings;
  }

  // The admin console's SET: the running config with one key changed, checked as a file
  // would be, and handed to the workers as a reload does. The next RELOAD re-reads the
  // file and so drops it (PgBouncer does the same).
  Result<std::vector<std::string>> set(const std::string& key, const std::string& value) {
    auto changed = std::make_shared<config::Config>(*config_);
    auto warning = config::setSetting(*changed, key, value);
    if (!warning) {
      return fail(warning.error().sqlstate, "pgpivot: " + warning.error().message);
    }
    std::string errors;
    for (const auto& diagnostic : config::validate(*changed)) {
      if (diagnostic.isError()) {
        errors += (errors.empty() ? "" : "; ") + diagnostic.message;
      }
    }
    if (!errors.empty()) {
      return fail("22023", "pgpivot: " + key + " = " + value + " refused: " + errors);
    }
    AuthFilePtr auth_file = auth_file_;
    std::vector<std::string> notices;
    if (changed->auth_file != config_->auth_file && !changed->auth_file.empty()) {
      std::vector<std::string> warnings;
      auto loaded = auth::loadAuthFile(changed->auth_file, warnings);
      if (!loaded) {
        return fail("22023", "pgpivot: auth_file: " + loaded.error().message);
      }
      auth_file = std::make_shared<const auth::AuthFile>(std::move(*loaded));
      notices.insert(notices.end(), warnings.begin(), warnings.end());
    }
    if (!warning->empty()) {
      notices.push_back(*warning);
    }
    PGPIVOT_LOG_INFO("admin console: SET {} = {}", key, value);
    log::setVerbosity(std::max(options_.verbose, changed->verbose), options_.quiet);
    config_ = changed;
    auth_file_ = auth_file;
    for (Worker* worker : workers_) {
      worker->postReload(config_, auth_file_);
    }
    return notices;
  }

  void shutdown(bool immediate) {
    for (Worker* worker : workers_) {
      worker->postShutdown(immediate);
    }
  }

 private:
  void poll() {
    for (Worker* worker : workers_) {
      if (!worker->finished()) {
        return;
      }
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&done_timer_), nullptr);
    mailbox_.close();
    uv_close(reinterpret_cast<uv_handle_t*>(&sighup_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  }

  const ProcessOptions& options_;
  ConfigPtr config_;
  AuthFilePtr auth_file_;  // the one the workers have (SET keeps it unless auth_file changes)
  std::vector<Worker*> workers_;
  uv_loop_t loop_{};
  uv_signal_t sighup_{};
  uv_signal_t sigint_{};
  uv_signal_t sigterm_{};
  uv_timer_t done_timer_{};
  net::Mailbox mailbox_;
};

}  // namespace

int runProcess(const ProcessOptions& options) {
  Loaded loaded = loadAll(options.config_path, true);
  if (!loaded.config) {
    return 1;
  }
  const config::Config& config = *loaded.config;
  if (options.daemon && config.logfile.empty()) {
    std::fprintf(stderr, "pgpivot: -d needs logfile set in the configuration\n");
    return 1;
  }
  // Before daemonizing, while stderr still reaches whoever started pgpivot.
  if (auto logging =
          log::setup({std::max(options.verbose, config.verbose), options.quiet, config.logfile});
      !logging) {
    std::fprintf(stderr, "pgpivot: %s\n", logging.error().message.c_str());
    return 1;
  }
  // Fork before any thread exists: a fork keeps only the calling thread.
  if (options.daemon && !daemonize()) {
    std::fprintf(stderr, "pgpivot: cannot daemonize\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);

  // One worker per core unless configured (DESIGN.md: workers, default = cores).
  const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
  const std::size_t count = config.workers > 0 ? static_cast<std::size_t>(config.workers)
                                               : static_cast<std::size_t>(cores);
  pool::SharedLimits shared;
  std::vector<Worker*> peers;
  std::vector<std::unique_ptr<Worker>> workers;
  for (std::size_t i = 0; i < count; ++i) {
    workers.push_back(std::make_unique<Worker>(static_cast<int>(i), loaded.config, loaded.auth_file,
                                               shared, peers));
    peers.push_back(workers.back().get());
  }
  // The admin console's RELOAD and SHUTDOWN run on the supervisor's thread; their
  // answers are called there and hop back to the asking worker (AdminService).
  Supervisor supervisor(options, loaded.config, loaded.auth_file, peers);
  ProcessHooks hooks;
  hooks.reload = [&supervisor](std::function<void(Result<std::vector<std::string>>)> done) {
    supervisor.post([&supervisor, done = std::move(done)] { done(supervisor.reload()); });
  };
  hooks.set = [&supervisor](const std::string& key, const std::string& value,
                            std::function<void(Result<std::vector<std::string>>)> done) {
    supervisor.post(
        [&supervisor, key, value, done = std::move(done)] { done(supervisor.set(key, value)); });
  };
  hooks.shutdown = [&supervisor] {
    supervisor.post([&supervisor] { supervisor.shutdown(false); });
  };
  // The health monitor watches every [cluster.*] on its own thread and tells the workers
  // where each cluster's primary is. It starts once the workers run.
  monitor::HealthMonitor health(loaded.config, [&peers](const monitor::ClusterRoute& route) {
    for (Worker* worker : peers) {
      worker->postRoute(route);
    }
  });
  hooks.cluster_status = [&health](std::vector<admin::ClusterRow>& clusters,
                                   std::vector<admin::NodeRow>& nodes,
                                   std::vector<admin::FailoverStepRow>& steps) {
    health.status(clusters, nodes, steps);
  };
  hooks.cluster_admin = [&health](const std::string& cluster, cluster::AdminKind kind,
                                  const std::string& node,
                                  std::function<void(Result<std::string>)> done) {
    health.admin(cluster, kind, node, std::move(done));
  };
  hooks.cluster_run = [&health](const std::string& cluster, cluster::AdminKind kind,
                                const std::string& node,
                                std::function<void(Result<admin::FailoverReport>)> done) {
    health.adminAndWait(cluster, kind, node, std::move(done));
  };
  hooks.data_path = [&health](monitor::DataPathReport report) {
    health.postDataPath(std::move(report));
  };
  hooks.drained = [&health](const std::string& cluster, uint64_t drain_id, int worker,
                            int of_workers, int64_t transactions, int64_t still_open) {
    health.postDrained(cluster, drain_id, worker, of_workers, transactions, still_open);
  };
  for (auto& worker : workers) {
    worker->setProcessHooks(&hooks);
  }
  // Block the signals the supervisor handles so worker threads never receive them.
  sigset_t handled;
  sigemptyset(&handled);
  sigaddset(&handled, SIGHUP);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);
  uint16_t port = config.listen_port;
  Result<void> started;
  std::size_t running = 0;
  for (auto& worker : workers) {
    // Every worker binds the same port (SO_REUSEPORT when there are several); only the
    // first takes the unix socket.
    started = worker->start(port, running == 0);
    if (!started) {
      break;
    }
    port = worker->boundPort();
    ++running;
  }
  pthread_sigmask(SIG_UNBLOCK, &handled, nullptr);
  if (!started) {
    PGPIVOT_LOG_ERROR("{}", started.error().message);
    for (std::size_t i = 0; i < running; ++i) {
      workers[i]->postShutdown(true);
      workers[i]->join();
    }
    return 1;
  }
  PGPIVOT_LOG_INFO("pgpivot {} listening on port {} with {} worker(s)", PGPIVOT_VERSION, port,
                   workers.size());

  if (!options.user.empty() && !switchUser(options.user)) {
    return 1;
  }
  if (!config.pidfile.empty()) {
    std::ofstream pidfile(config.pidfile, std::ios::trunc);
    pidfile << getpid() << "\n";
    if (!pidfile) {
      PGPIVOT_LOG_ERROR("cannot write pidfile {}", config.pidfile);
    }
  }

  health.start();

  supervisor.run();
  health.stop();
  for (auto& worker : workers) {
    worker->join();
  }
  if (!config.pidfile.empty()) {
    ::unlink(config.pidfile.c_str());
  }
  PGPIVOT_LOG_INFO("pgpivot stopped");
  return 0;
}

}  // namespace pgpivot::app
