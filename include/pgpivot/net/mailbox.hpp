// The only way work crosses between loops (STYLE.md 3.2): a uv_async_t plus a locked
// queue of tasks. Producers on any thread post; the tasks run on the owning loop. The
// lock guards the queue only, never the data the tasks touch. Control plane only
// (reload, shutdown, cancel forwarding), never per message.
#pragma once

#include <uv.h>

#include <deque>
#include <functional>
#include <mutex>

namespace pgpivot::net {

class Mailbox final {
 public:
  using Task = std::function<void()>;

  Mailbox() = default;
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // On the owning loop's thread, before anyone posts.
  [[nodiscard]] int init(uv_loop_t* loop);
  // Any thread.
  void post(Task task);
  // On the owning loop's thread; tasks posted after this are dropped.
  void close();

 private:
  void drain();

  uv_async_t async_{};
  std::mutex mutex_;
  std::deque<Task> tasks_;
  bool open_ = false;
};

}  // namespace pgpivot::net
