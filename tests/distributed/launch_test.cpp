// Real processes: `moco pretrain --nproc-per-node 2`, the reference Python's torchrun
// --no-python, resuming on another number of ranks, a killed or hung rank,
// and ranks started with different flags.
#include <fmt/format.h>

#include <regex>

#include "../support.h"
#include "distributed/communicator.h"
#include "distributed/launcher.h"

namespace moco::distributed {
namespace {

namespace fs = test::fs;

test::CommandResult sh(const std::string& cmd, const fs::path& dir) {
  return test::run_capture(cmd, dir);
}

std::string tiny(const fs::path& out) {
  return " -a resnet18 --width 8 -b 16 --bn-splits 2 --moco-k 32 --threads 1 "
         "-j 1 -p 1 --no-progress --knn-k 5 --dist-timeout 60 --output '" +
         out.string() + "'";
}

class Launch : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("launch");
    fs::create_directories(dir_ / "data");
    test::write_idx_dataset(dir_ / "data", 64, 16, 4);
  }
  std::string data() const { return "'" + (dir_ / "data").string() + "'"; }
  fs::path dir_;
};

TEST_F(Launch, NprocPerNodeTrainsCheckpointsAndResumesOnOneRank) {
  auto r = sh("'" + test::moco_binary() + "' pretrain " + data() +
                  " --nproc-per-node 2 --epochs 1" + tiny(dir_ / "run"),
              dir_);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("distributed: 2 processes (torchrun, gloo"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("batch 16 (8 per process)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("final kNN top-1"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir_ / "run" / "checkpoint.pth.tar"));
  // Rank 1 wrote no log lines of its own but errors would show as "rank 1".
  EXPECT_EQ(r.out.find("rank 1 info"), std::string::npos) << r.out;
  // The same global batch on one process continues the 2-rank run.
  r = sh("'" + test::moco_binary() + "' pretrain " + data() +
             " --epochs 2 --resume '" + (dir_ / "run" / "checkpoint.pth.tar").string() +
             "'" + tiny(dir_ / "run"),
         dir_);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("resumed from"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("epoch 2/2 done"), std::string::npos) << r.out;
}

TEST_F(Launch, SyncBnRun) {
  auto r = sh("'" + test::moco_binary() + "' pretrain " + data() +
                  " --nproc-per-node 2 --sync-bn --epochs 1" + tiny(dir_ / "sync"),
              dir_);
  ASSERT_EQ(r.rc, 0) << r.out;
  // The line rank 0 logs when it wires SyncBN in (not the echoed flags).
  EXPECT_NE(r.out.find("SyncBN: BatchNorm statistics over all 2 processes"),
            std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir_ / "sync" / "checkpoint.pth.tar"));
}

TEST_F(Launch, TorchrunNoPython) {
  ASSERT_TRUE(fs::exists(test::torchrun())) << "needs torch's torchrun: " << test::torchrun();
  // Debian's torchrun 1.13 on Python 3.11 cannot parse its default
  // --redirects/--tee value "0" (Std.NONE is no longer iterable in a 3.11
  // IntFlag); "1" works, and our log goes to stderr anyway.
  auto r = sh("'" + test::torchrun() + "' --no_python --nproc_per_node 2 --master_port " +
                  std::to_string(test::free_port()) + " "
              "--redirects 1 --tee 1 --log_dir '" + (dir_ / "torchrun-logs").string() + "' '" +
                  test::moco_binary() + "' pretrain " + data() + " --epochs 1" +
                  tiny(dir_ / "tr"),
              dir_);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("distributed: 2 processes (torchrun"), std::string::npos)
      << r.out;
  EXPECT_TRUE(fs::exists(dir_ / "tr" / "checkpoint.pth.tar"));
}

double seconds_of(const std::string& out) {
  std::smatch m;
  std::regex re("seconds=([0-9.]+)");
  return std::regex_search(out, m, re) ? std::stod(m[1]) : 1e9;
}

// Rank 1 is killed; rank 0 sees it go in its next collective and exits,
// often before the launcher has reaped rank 1. The summary names rank 1,
// the cause, and its signal, whichever of the two ended first.
TEST_F(Launch, AKilledRankStopsTheRunNamingIt) {
  const std::string script = std::string(MOCO_SOURCE_DIR) + "/tests/distributed/fault.sh";
  auto r = sh("'" + script + "' '" + test::moco_binary() + "' " + data() + " '" +
                  dir_.string() + "' KILL 60",
              dir_);
  const auto log = test::read_text(dir_ / "log");
  // The killed rank's status is the launcher's.
  EXPECT_NE(r.out.find("launcher_rc=137"), std::string::npos) << r.out << log;
  EXPECT_LT(seconds_of(r.out), 30.0) << r.out;
  EXPECT_NE(r.out.find("ranks_left=0"), std::string::npos) << r.out;
  std::smatch m;
  const std::regex summary(
      "rank 1 failed first: killed by signal 9 \\(SIGKILL\\); ranks ended "
      "\\(in this order\\): ([^\\n]*)");
  ASSERT_TRUE(std::regex_search(log, m, summary)) << log;
  const std::string ends = m[1];
  EXPECT_NE(ends.find("rank 1 killed by signal 9 (SIGKILL)"), std::string::npos) << ends;
  EXPECT_NE(ends.find("rank 0 "), std::string::npos) << ends;
  // Rank 0's own error names the rank that is gone.
  EXPECT_NE(log.find("rank 0: "), std::string::npos) << log;
  EXPECT_NE(log.find("rank 1 is gone"), std::string::npos) << log;
  EXPECT_EQ(log.find("rank 0 failed first"), std::string::npos) << log;
}

RankEnd exited(int64_t rank, int code) {
  RankEnd e;
  e.rank = rank;
  e.code = code;
  return e;
}

RankEnd killed(int64_t rank, int sig, bool by_launcher = false, bool hung = false) {
  RankEnd e = exited(rank, sig);
  e.signaled = true;
  e.killed_by_launcher = by_launcher;
  e.hung = hung;
  return e;
}

// Which rank the summary names, case by case.
TEST(LaunchSummary, TheCauseIsTheFirstRankThatFailedForItsOwnReason) {
  // The survivor exits first, having lost its peer: the killed rank is named.
  std::vector<RankEnd> ends = {exited(0, kPeerLostStatus), killed(1, 9)};
  EXPECT_EQ(first_cause(ends), 1u);
  EXPECT_EQ(failure_summary(ends),
            "rank 1 failed first: killed by signal 9 (SIGKILL); ranks ended (in "
            "this order): rank 0 exited with status 75 (lost a peer), rank 1 killed "
            "by signal 9 (SIGKILL)");
  // A rank that exited 1 on its own (bad data) before a segfault elsewhere.
  ends = {exited(2, kPeerLostStatus), exited(1, 1), killed(0, 11)};
  EXPECT_EQ(first_cause(ends), 1u);
  EXPECT_EQ(ends[2].describe(), "killed by signal 11 (SIGSEGV)");
  // Ranks the launcher killed after the grace are consequences.
  ends = {killed(0, 9, true), exited(1, 3), exited(2, kPeerLostStatus)};
  EXPECT_EQ(first_cause(ends), 1u);
  EXPECT_EQ(ends[0].describe(), "killed by signal 9 (SIGKILL) (by the launcher)");
  // A rank stopped for --dist-timeout is the cause though the launcher
  // killed it, and the others' timeouts are not.
  ends = {exited(0, kPeerLostStatus), killed(1, 9, true, true)};
  EXPECT_EQ(first_cause(ends), 1u);
  EXPECT_EQ(ends[1].describe(), "killed by signal 9 (SIGKILL) (stopped for --dist-timeout)");
  // A rank that exited by itself is its own cause even when the launcher's
  // SIGKILL found it a zombie.
  RankEnd late = exited(1, 2);
  late.killed_by_launcher = true;
  ends = {exited(0, kPeerLostStatus), late};
  EXPECT_EQ(first_cause(ends), 1u);
  // Only lost peers (the cause was not seen): the first failure is named.
  ends = {exited(0, 0), exited(1, kPeerLostStatus), exited(2, kPeerLostStatus)};
  EXPECT_EQ(first_cause(ends), 1u);
  // Nothing failed.
  ends = {exited(0, 0), exited(1, 0)};
  EXPECT_EQ(first_cause(ends), ends.size());
  EXPECT_EQ(killed(0, 64).describe(), "killed by signal 64");
}

TEST_F(Launch, AHungRankTimesOut) {
  const std::string script = std::string(MOCO_SOURCE_DIR) + "/tests/distributed/fault.sh";
  auto r = sh("'" + script + "' '" + test::moco_binary() + "' " + data() +
                  " '" + dir_.string() + "' STOP 10",
              dir_);
  const auto log = test::read_text(dir_ / "log");
  EXPECT_EQ(r.out.find("launcher_rc=0"), std::string::npos) << r.out << log;
  // Within one --dist-timeout (10 s) and a little: rank 0's collective times
  // out, and the launcher kills the rank stopped for that long (it once
  // waited a second timeout: 2 x 10 s and more).
  EXPECT_LT(seconds_of(r.out), 16.0) << r.out;
  EXPECT_NE(r.out.find("ranks_left=0"), std::string::npos) << r.out;
  EXPECT_NE(log.find("rank 1 has been stopped for --dist-timeout"),
            std::string::npos)
      << log;
}

// The launcher's ranks die with it: SIGTERM and SIGINT are passed on, and
// SIGKILL (no handler sees it) ends them through their parent-death signal;
// they once trained on to the end, writing checkpoints.
TEST_F(Launch, RanksEndWithTheirLauncher) {
  const std::string script =
      std::string(MOCO_SOURCE_DIR) + "/tests/distributed/fault.sh";
  for (const char* sig : {"TERM", "INT", "KILL"}) {
    const auto out = dir_ / sig;
    fs::create_directories(out);
    auto r = sh("'" + script + "' '" + test::moco_binary() + "' " + data() +
                    " '" + out.string() + "' " + sig + " 60 launcher",
                dir_);
    const auto log = test::read_text(out / "log");
    EXPECT_NE(r.out.find("ranks_left=0"), std::string::npos)
        << sig << r.out << log;
    EXPECT_EQ(r.out.find("launcher_rc=0"), std::string::npos)
        << sig << r.out << log;
    // The ranks finish their step and save first: a bound with margin for
    // a loaded 2-core machine (it takes ~1 s idle).
    EXPECT_LT(seconds_of(r.out), 30.0) << sig << r.out;
    if (std::string(sig) != "KILL") {
      EXPECT_NE(log.find("passing it to the ranks"), std::string::npos) << log;
    }
    for (const auto& e : fs::directory_iterator(out / "run")) {
      EXPECT_NE(e.path().extension(), ".tmp") << e.path();
    }
  }
}

TEST_F(Launch, RanksWithDifferentFlagsAreRefused) {
  // Two processes started by hand, as a scheduler would, rank 1 with
  // another --lr.
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                          std::to_string(test::free_port()) + " WORLD_SIZE=2 ";
  const std::string bin = "'" + test::moco_binary() + "' pretrain " + data() +
                          " --epochs 1";
  auto r = sh("(" + env + "RANK=0 " + bin + tiny(dir_ / "a") + " > '" +
                  (dir_ / "r0.log").string() + "' 2>&1; echo rc0=$? >> '" +
                  (dir_ / "r0.log").string() + "') & " + env + "RANK=1 " + bin +
                  " --lr 0.5" + tiny(dir_ / "a") + "; echo rc1=$?; wait",
              dir_);
  EXPECT_NE(r.out.find("rc1=1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("other options than rank 0"), std::string::npos) << r.out;
  // The message names the flag and both values.
  EXPECT_NE(r.out.find("lr (0.03 on rank 0, 0.5 here)"), std::string::npos) << r.out;
  const auto r0 = test::read_text(dir_ / "r0.log");
  EXPECT_EQ(r0.find("rc0=0"), std::string::npos) << r0;
}

TEST_F(Launch, TheLaunchFlagInAnyFormStartsOneGenerationOfRanks) {
  // --multiprocessing-distributed=true: the ranks get the flags without it
  // and train; none launches again.
  auto r = sh("'" + test::moco_binary() + "' pretrain " + data() +
                  " --multiprocessing-distributed=true --epochs 1 --max-steps 1" +
                  tiny(dir_ / "once"),
              dir_);
  ASSERT_EQ(r.rc, 0) << r.out;
  size_t launches = 0;
  for (auto at = r.out.find("started "); at != std::string::npos;
       at = r.out.find("started ", at + 1)) {
    if (r.out.compare(at, 30, "started 1 processes (ranks 0..") == 0) ++launches;
  }
  EXPECT_EQ(launches, 1u) << r.out;
  // A process that has a rank already is refused at once, naming the flag.
  for (const char* flag : {"--multiprocessing-distributed=true", "--nproc-per-node 2"}) {
    r = sh("RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 timeout 60 '" +
               test::moco_binary() + "' pretrain " + data() + " " + flag + " --epochs 1" +
               tiny(dir_ / "again"),
           dir_);
    EXPECT_EQ(r.rc, 1) << flag << ": " << r.out;
    EXPECT_NE(r.out.find("already rank 0 of 1"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("started "), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace moco::distributed
