#include "core/signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace moco {

namespace {

// Only what a signal handler may touch: a fixed buffer and an atomic flag.
char g_partial[4096];
std::atomic<bool> g_has_partial{false};

void write_all(const char* s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    const ssize_t w = ::write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void on_stop_signal(int sig) {
  write_all(sig == SIGINT ? "\nmoco: interrupted (SIGINT); stopping\n"
                          : "\nmoco: received SIGTERM; stopping\n");
  if (g_has_partial.load()) {
    ::unlink(g_partial);
    write_all("moco: removed the unfinished ");
    write_all(g_partial);
    write_all("\n");
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  for (int sig : {SIGINT, SIGTERM}) {
    // A signal ignored by whoever started us (a shell's background job,
    // nohup-style wrappers) stays ignored, as the convention is.
    struct sigaction old {};
    ::sigaction(sig, nullptr, &old);
    if (old.sa_handler != SIG_IGN) ::sigaction(sig, &sa, nullptr);
  }
}

PartialFile::PartialFile(const std::string& path) {
  if (path.size() >= sizeof(g_partial)) return;
  g_has_partial.store(false);
  std::memcpy(g_partial, path.c_str(), path.size() + 1);
  g_has_partial.store(true);
  active_ = true;
}

PartialFile::~PartialFile() {
  if (active_) g_has_partial.store(false);
}

}  // namespace moco
