#include "pgpivot/net/mailbox.hpp"

#include <utility>

namespace pgpivot::net {

int Mailbox::init(uv_loop_t* loop) {
  async_.data = this;
  const int rc = uv_async_init(
      loop, &async_, [](uv_async_t* a) noexcept { static_cast<Mailbox*>(a->data)->drain(); });
  if (rc == 0) {
    std::lock_guard lock(mutex_);
    open_ = true;
  }
  return rc;
}

void Mailbox::post(Task task) {
  {
    std::lock_guard lock(mutex_);
    if (!open_) {
      return;
    }
    tasks_.push_back(std::move(task));
  }
  uv_async_send(&async_);
}

void Mailbox::drain() {
  std::deque<Task> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(tasks_);
  }
  for (auto& task : batch) {
    task();
  }
}

void Mailbox::close() {
  {
    std::lock_guard lock(mutex_);
    open_ = false;
    tasks_.clear();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
}

}  // namespace pgpivot::net
