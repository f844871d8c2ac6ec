// A full disk under the SQLite target (issue 24, acceptance 5). The target's directory is a
// 2 MB tmpfs with a ballast file in it (root can mount one; where mounting is refused, the
// target database's max_page_count stands in: DPONE_TEST_SQLITE_MAX_PAGE_COUNT):
//   - a window whose staging fits but whose promotion does not: the run fails with
//     DISK_FULL in phase promote, its staging is dropped before it ends (and says so),
//     target and state are as before, and once the ballast is gone the plain re-run loads
//     the window exactly, with no manual repair;
//   - a window too large even to stage: DISK_FULL in phase stage, nothing left behind, the
//     re-run after freeing space exact;
//   - a load that succeeds leaves no WAL behind to keep the disk full.
#include <fmt/format.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <sstream>

#include "harness.hpp"

namespace {

using namespace e2e;

// 8,000 of these rows stage as ~108 pages of 4 KiB (~440 KB).
std::string file_rows(int day, int n) {
  std::string out = "id,name,day\n";
  for (int i = 0; i < n; ++i)
    out += fmt::format("{},event {} of day {} with some padding text,{}\n", day * 100000 + i, i,
                       day, day);
  return out;
}

// The target directory: a 2 MB tmpfs holding a ballast file, or (mount refused) a plain
// directory whose database is capped by max_page_count instead.
class SmallDisk {
 public:
  explicit SmallDisk(const fs::path& dir) : dir_(dir) {
    fs::create_directories(dir_);
    // DPONE_TEST_NO_TMPFS=1 tries the stand-in where the mount would work.
    mounted_ = geteuid() == 0 && !std::getenv("DPONE_TEST_NO_TMPFS") &&
               ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=2m") == 0;
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  bool mounted() const { return mounted_; }
  // Fills `bytes` of the disk (tmpfs), or caps the database at `pages` 4 KiB pages.
  std::map<std::string, std::string> fill(size_t bytes, int pages) {
    if (!mounted_) return {{"DPONE_TEST_SQLITE_MAX_PAGE_COUNT", std::to_string(pages)}};
    write_file(dir_ / "ballast", std::string(bytes, 'x'));
    return {};
  }
  void free_space() { fs::remove(dir_ / "ballast"); }
  int64_t free_kb() const { return static_cast<int64_t>(fs::space(dir_).available / 1024); }

 private:
  fs::path dir_;
  bool mounted_ = false;
};

class DiskFull : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(dir_ / "manifest.yaml",
               "kind: dpone.batch.v1\n"
               "streams:\n"
               "  - name: events\n"
               "    source: {connector: files, path: \"landing/*.csv\", incremental: new_files}\n"
               "    sink: {connector: sqlite, path: tgt/target.db, table: events, strategy: {mode: "
               "append}}\n");
    write_file(dir_ / "landing" / "day0.csv", file_rows(0, 500));
    Result first = run_dpone(dir_.dir(), {"run", "manifest.yaml"});
    ASSERT_EQ(first.exit_code, 0) << first.all();
  }
  fs::path db() const { return dir_ / "tgt" / "target.db"; }
  // "rows,distinct ids,staging tables"
  std::string target() const {
    int staging = 0;
    for (const auto& t : table_names(db()))
      if (t.find("__dpone_stg_") != std::string::npos) ++staging;
    std::istringstream in(dump_table(db(), "events", "id"));
    std::set<std::string> ids;
    int rows = 0;
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      ++rows;
      ids.insert(line.substr(0, line.find(',')));
    }
    return fmt::format("{},{},{}", rows, ids.size(), staging);
  }
  std::string state() const { return state_of(dir_.dir(), "manifest.yaml", "events").dump(); }

  // One window that does not fit: the run fails with DISK_FULL in `phase`, drops its
  // staging and leaves target and state as they were; after freeing space the plain
  // re-run loads it exactly.
  void window_that_does_not_fit(int rows, size_t ballast, int pages, const std::string& phase) {
    const std::string state_before = state();
    write_file(dir_ / "landing" / "day1.csv", file_rows(1, rows));
    auto env = disk_.fill(ballast, pages);
    Result full = run_dpone(dir_.dir(), {"run", "manifest.yaml"}, env);
    EXPECT_EQ(full.exit_code, 1) << full.all();
    EXPECT_NE(full.all().find("events: FAILED [DISK_FULL] in phase " + phase), std::string::npos)
        << full.all();
    EXPECT_NE(full.all().find("free space there"), std::string::npos) << full.all();
    // A failed stage drops its own staging; a failed promotion's is dropped by the run,
    // which says so.
    if (phase == "promote") {
      EXPECT_NE(full.all().find("events: staging events__dpone_stg_"), std::string::npos)
          << full.all();
    }
    EXPECT_EQ(target(), "500,500,0");
    EXPECT_EQ(state(), state_before);

    disk_.free_space();
    Result rerun = run_dpone(dir_.dir(), {"run", "manifest.yaml"});
    EXPECT_EQ(rerun.exit_code, 0) << rerun.all() << "free " << disk_.free_kb() << " KiB";
    EXPECT_NE(rerun.out.find(fmt::format("events: loaded {} rows", rows)), std::string::npos)
        << rerun.all();
    EXPECT_EQ(target(), fmt::format("{0},{0},0", 500 + rows));
  }

  Scratch dir_;
  SmallDisk disk_{dir_ / "tgt"};
};

TEST_F(DiskFull, PromotionOutOfSpaceDropsItsStagingAndTheRerunAfterFreeingSpaceIsExact) {
  if (!disk_.mounted()) std::cerr << "disk_full_test: tmpfs refused, max_page_count stands in\n";
  // The staging fits into the ~1 MB left beside the ballast (or under 200 pages: 19 + 108);
  // staging and target together do not.
  window_that_does_not_fit(8000, 1000000, 200, "promote");
}

TEST_F(DiskFull, StagingOutOfSpaceLeavesNothingAndTheRerunAfterFreeingSpaceIsExact) {
  window_that_does_not_fit(8000, 1800000, 60, "stage");
}

TEST_F(DiskFull, ASuccessfulLoadGivesItsWalBack) {
  if (!disk_.mounted()) GTEST_SKIP() << "needs the tmpfs (mount refused)";
  write_file(dir_ / "landing" / "day1.csv", file_rows(1, 6000));
  Result r = run_dpone(dir_.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  std::error_code ec;
  const auto wal = fs::file_size(fs::path(db().string() + "-wal"), ec);
  EXPECT_TRUE(ec || wal == 0) << "WAL left with " << wal << " bytes";
  // Two windows of the same size fit one after another: the first left no debris.
  write_file(dir_ / "landing" / "day2.csv", file_rows(2, 6000));
  Result again = run_dpone(dir_.dir(), {"run", "manifest.yaml"});
  EXPECT_EQ(again.exit_code, 0) << again.all() << "free " << disk_.free_kb() << " KiB";
  EXPECT_EQ(target(), "12500,12500,0");
}

}  // namespace
