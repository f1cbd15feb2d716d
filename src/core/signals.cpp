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
std::atomic<int> g_graceful{0};      // GracefulStop scopes open
std::atomic<int> g_stop_signal{0};   // the signal a scope received

void write_all(const char* s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    const ssize_t w = ::write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void install(int sig);

void on_stop_signal(int sig) {
  if (g_graceful.load() > 0 && g_stop_signal.load() == 0) {
    g_stop_signal.store(sig);
    write_all(sig == SIGINT
                  ? "\nmoco: interrupted (SIGINT); finishing this step and "
                    "saving a checkpoint (Ctrl-C again to stop at once)\n"
                  : "\nmoco: received SIGTERM; finishing this step and saving "
                    "a checkpoint\n");
    install(sig);  // SA_RESETHAND cleared it: the next one stops at once
    return;
  }
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

void install(int sig) {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  ::sigaction(sig, &sa, nullptr);
}

}  // namespace

void install_stop_handlers() {
  for (int sig : {SIGINT, SIGTERM}) {
    // A signal ignored by whoever started us (a shell's background job,
    // nohup-style wrappers) stays ignored, as the convention is.
    struct sigaction old {};
    ::sigaction(sig, nullptr, &old);
    if (old.sa_handler != SIG_IGN) install(sig);
  }
}

GracefulStop::GracefulStop() { g_graceful.fetch_add(1); }

GracefulStop::~GracefulStop() { g_graceful.fetch_sub(1); }

int GracefulStop::signal() { return g_stop_signal.load(); }

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
