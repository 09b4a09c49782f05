// A small ext4 file system on a loop device under /tmp that a node's pg_wal is moved onto,
// for the storage faults of research §6.2: `fsfreeze` stalls every WAL write while reads
// keep answering (fault 5), and a filler file leaves WAL no room to grow (fault 11, WAL
// disk full). Needs root, losetup and mkfs.ext4; where they fail, error() says why and the
// test skips. Declare it before the cluster that uses it: it is thawed, unmounted and
// detached after the nodes have stopped, however the test ends.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "support/pgbench_load.hpp"

namespace pgpivot::test {

class WalDisk {
 public:
  explicit WalDisk(int megabytes = 256) {
    char pattern[] = "/tmp/pgpivot-waldisk.XXXXXX";
    if (::mkdtemp(pattern) == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = pattern;
    ::chmod(dir_.c_str(), 0755);  // the postgres user must reach the mount point
    mount_ = dir_ + "/mnt";
    const ShellResult made = runShell("truncate -s " + std::to_string(megabytes) + "M " + dir_ +
                                      "/disk.img && losetup -f --show " + dir_ + "/disk.img");
    if (made.status != 0) {
      error_ = "no loop device (losetup failed): " + made.output;
      return;
    }
    device_ = made.output.substr(0, made.output.find('\n'));
    const ShellResult mounted =
        runShell("mkfs.ext4 -q " + device_ + " && mkdir -p " + mount_ + " && mount " + device_ +
                 " " + mount_ + " && chown postgres " + mount_);
    if (mounted.status != 0) {
      error_ = "cannot make or mount an ext4 file system: " + mounted.output;
    }
  }
  ~WalDisk() {
    if (!device_.empty()) {
      runShell("fsfreeze -u " + mount_ + " 2>/dev/null; umount " + mount_ + " || umount -l " +
               mount_ + "; losetup -d " + device_);
    }
    if (!dir_.empty()) {
      runShell("rm -rf " + dir_);
    }
  }
  WalDisk(const WalDisk&) = delete;
  WalDisk& operator=(const WalDisk&) = delete;

  // "" when the file system is mounted and usable, otherwise why not.
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] const std::string& mount() const { return mount_; }

  // Moves the pg_wal of the node in `data` onto this file system (a clean stop, the move,
  // a symlink, a start). "" on success, otherwise what failed with its output.
  std::string adopt(const std::string& data) const {
    const std::string pg_ctl = "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D " +
                               data + " -l " + data + "/server.log -w -t 60 ";
    const ShellResult moved =
        runShell(pg_ctl + "-m fast stop && mv " + data + "/pg_wal " + mount_ + "/pg_wal && ln -s " +
                 mount_ + "/pg_wal " + data + "/pg_wal && chown -h postgres " + data +
                 "/pg_wal && " + pg_ctl + "start");
    return moved.status == 0 ? "" : moved.output;
  }

  bool freeze(bool frozen) const {
    return runShell((frozen ? "fsfreeze -f " : "fsfreeze -u ") + mount_).status == 0;
  }

  // Bytes an unprivileged writer (the postgres user) can still allocate here.
  [[nodiscard]] int64_t freeBytes() const {
    struct statvfs fs {};
    if (::statvfs(mount_.c_str(), &fs) != 0) {
      return -1;
    }
    return static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
  }

  // A filler file (root's, outside pg_wal) takes all but about `leave_bytes` of the free
  // space. "" on success, otherwise what failed.
  std::string fill(int64_t leave_bytes) const {
    const int64_t take = freeBytes() - leave_bytes;
    if (take <= 0) {
      return "";
    }
    const ShellResult filled =
        runShell("fallocate -l " + std::to_string(take) + " " + mount_ + "/filler");
    return filled.status == 0 ? "" : filled.output;
  }
  // The filler gone: what an operator does first after a disk-full page.
  bool unfill() const { return ::unlink((mount_ + "/filler").c_str()) == 0; }

 private:
  std::string dir_;
  std::string device_;
  std::string mount_;
  std::string error_;
};

}  // namespace pgpivot::test
