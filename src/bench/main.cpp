// usbnet-bench: how close usbnet comes to the network's own limit.
//
// Every figure is printed beside the raw loopback-TCP figure of the same shape, measured in the
// same run on the same machine, and their ratio: these machines are shared and absolute times
// drift, ratios much less. The usbnet side is measured by a worker process, a plain libusb
// program started with LD_PRELOAD=libusbnet.so, talking to a usbnet-agent with the simulated
// loopback device, both started here.
//
//   usbnet-bench [--quick] [--rounds N] [--piece-size BYTES] [--cpus one|any] [--one-connection]
//                [--no-tls] [--delays MS,...|none]
//
// Each row alternates between usbnet and raw TCP for several rounds and compares the medians,
// so that a machine that gets busier or quieter during the run affects both alike. Both sides
// do the same work: the same sizes, the same direction, the same number of bytes. The raw
// figure is the best a simple program gets from loopback TCP for that work; where two simple
// programs are plausible (async: one-way streaming, or requests pipelined as deep as usbnet's
// queue), both are measured every round and the better median is the baseline.
//
// By default every process (the agent, the worker, the raw server and client) runs on one
// CPU: on a small VM a wakeup across virtual CPUs costs tens of microseconds, and the scheduler
// flips between placements in the middle of a run, so both sides' figures jump between two
// modes (raw TCP ping-pong 4.3 us on one CPU, 40-60 us across two; streaming 9 GB/s or 1.5).
// One CPU (the idlest at the start) measures what each side costs; --cpus any lets the
// scheduler place them.
//
// Then the TLS rows (unless --no-tls): usbnet over TLS 1.3, the worker's client key authorized by
// the agent and the agent's key pinned by the worker, beside a raw TLS pair (raw_tls.h) made
// with usbnet's own TLS contexts and keys of the same type, so the same cipher suite, which
// the block's header shows as both negotiate it. Every key lives in a temporary directory.
//
// Then the delayed-link rows (--delays, round trips in ms; 0,1,10 by default): the same kinds of
// work through a delaying proxy (delay_proxy.h), usbnet's connection to the agent and the raw
// baseline's through the same one, so that the ratio shows how many round trips each costs.
#include <fcntl.h>
#include <libusb.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/delay_proxy.h"
#include "bench/raw_tcp.h"
#include "bench/raw_tls.h"
#include "bench/rows.h"
#include "bench/usb_measure.h"
#include "common/loopback_device.h"
#include "security/key_store.h"

namespace fs = std::filesystem;
namespace loopback_device = usbnet::loopback_device;
namespace security = usbnet::security;
using namespace usbnet::bench;
using std::chrono::milliseconds;

namespace {

struct Options {
  bool quick = false;
  int rounds = 0;  // 0: the default for the mode
  std::string piece_size;
  bool one_cpu = true;
  bool one_connection = false;
  bool tls = true;
  // Round trips of the delayed-link rows, in milliseconds; empty: none.
  std::vector<double> delays_ms = {0, 1, 10};
};

const std::vector<std::size_t> kControlSizes = {8, 64, 1024};
const std::vector<std::size_t> kBulkSizes = {4096, 65536, 1 << 20};
const std::vector<int> kDepths = {1, 2, 4, 8, 16, 32};
constexpr std::size_t kAsyncSize = 65536;
constexpr int kDelayedDepth = 8;  // async transfers in flight on a delayed link
// The TLS rows' queue depths: the plaintext rows' first with a target, and their deepest.
const std::vector<int> kTlsDepths = {8, 32};

void print_column_heads(const char* raw = "raw TCP") {
  std::printf("%-40s %10s %10s %6s  %-12s %-22s\n", "", "usbnet", raw, "ratio", "raw is",
              "usbnet range");
}

// The run's keys and trust files, in a temporary directory removed at the end: the agent's
// state directory (its key, authorized_clients with the TLS worker's key), the TLS worker's
// client directory (its key, known_agents pinning the agent), and an empty client directory for
// the plaintext workers (whose agent on loopback, not pinned there, they reach in plaintext).
struct BenchKeys {
  BenchKeys()
      : dir(make_temp_dir()),
        agent_key(make_key(state_dir(), "agent_key", kAgentComment)),
        client_key(make_key(tls_client_dir(), "client_key", kClientComment)) {
    check(security::make_private_dir(plain_client_dir()));
    check(security::append_private_line(state_dir() / "authorized_clients",
                                        line_of(client_key, kClientComment)));
  }
  ~BenchKeys() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  BenchKeys(const BenchKeys&) = delete;
  BenchKeys& operator=(const BenchKeys&) = delete;

  fs::path state_dir() const { return dir / "agent-state"; }
  fs::path tls_client_dir() const { return dir / "tls-client"; }
  fs::path plain_client_dir() const { return dir / "plain-client"; }
  // The TLS worker pins the agent at `endpoint`.
  void pin_agent(const std::string& endpoint) const {
    check(security::append_private_line(tls_client_dir() / "known_agents",
                                        endpoint + " " + line_of(agent_key, kAgentComment)));
  }

  const fs::path dir;
  const security::KeyPair agent_key;
  const security::KeyPair client_key;

 private:
  static constexpr const char* kAgentComment = "usbnet-bench-agent";
  static constexpr const char* kClientComment = "usbnet-bench-client";

  static void check(const std::optional<std::string>& error) {
    if (error) throw std::runtime_error(*error);
  }
  static fs::path make_temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "usbnet-bench-keys.XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    return pattern;
  }
  static security::KeyPair make_key(const fs::path& in, const char* name, const char* comment) {
    check(security::make_private_dir(in));
    auto loaded = security::load_or_create_key(in / name, comment);
    if (!loaded) throw std::runtime_error(loaded.error());
    return loaded->key;
  }
  static std::string line_of(const security::KeyPair& key, const char* comment) {
    return security::KeyLine{key.public_key(), comment}.to_string();
  }
};

// ---- the worker: measures through libusb on command ----------------------------------------
//
// It reads one command per line from stdin and answers with one number per line:
//   control SIZE ITERATIONS    -> median round trip in ns
//   sync_in SIZE BYTES         -> bytes per second
//   async in|out DEPTH BYTES   -> bytes per second (64 KiB transfers)

int worker() {
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 1;
  libusb_device_handle* h =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, loopback_device::kProductId);
  if (!h || libusb_claim_interface(h, 0) != 0) {
    std::fprintf(stderr, "usbnet-bench: the loopback device is not reachable\n");
    return 1;
  }
  char line[128];
  try {
    while (std::fgets(line, sizeof line, stdin)) {
      char what[16] = {}, direction[8] = {};
      unsigned long a = 0, b = 0;
      double value = 0;
      if (std::sscanf(line, "control %lu %lu", &a, &b) == 2) {
        value = static_cast<double>(control_round_trip(h, a, static_cast<int>(b)).count());
      } else if (std::sscanf(line, "sync_in %lu %lu", &a, &b) == 2) {
        value = sync_bulk_in(h, a, b);
      } else if (std::sscanf(line, "async %7s %lu %lu", direction, &a, &b) == 3) {
        value = async_bulk(ctx, h, std::strcmp(direction, "in") == 0, kAsyncSize,
                           static_cast<int>(a), b);
      } else if (std::sscanf(line, "%15s", what) == 1 && std::strcmp(what, "quit") == 0) {
        break;
      }
      std::printf("%.0f\n", value);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "usbnet-bench: %s\n", e.what());
    return 1;
  }
  libusb_release_interface(h, 0);
  libusb_close(h);
  libusb_exit(ctx);
  return 0;
}

// ---- the driver -------------------------------------------------------------------------

// A child process with a pipe to its stdin and one from its stdout.
struct Child {
  pid_t pid = -1;
  FILE* to = nullptr;
  FILE* from = nullptr;
  std::string stderr_path;
};

Child spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  int in[2], out[2];
  if (::pipe(in) != 0 || ::pipe(out) != 0) throw std::runtime_error("pipe failed");
  char path[] = "/tmp/usbnet-bench-XXXXXX";
  const int err = ::mkstemp(path);
  Child child;
  child.stderr_path = path;
  child.pid = ::fork();
  if (child.pid == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err, STDERR_FILENO);
    ::close(in[1]);
    ::close(out[0]);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err);
  child.to = ::fdopen(in[1], "w");
  child.from = ::fdopen(out[0], "r");
  return child;
}

std::string slurp(const std::string& path) {
  std::string out;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buffer[4096];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) out.append(buffer, n);
    std::fclose(f);
  }
  return out;
}

double ask(Child& worker, const std::string& command) {
  std::fprintf(worker.to, "%s\n", command.c_str());
  std::fflush(worker.to);
  char line[64];
  if (!std::fgets(line, sizeof line, worker.from)) {
    throw std::runtime_error("the worker failed: " + slurp(worker.stderr_path));
  }
  return std::atof(line);
}

// Idle time per CPU so far (from /proc/stat), indexed by CPU number.
std::vector<unsigned long long> idle_times() {
  std::vector<unsigned long long> idle;
  FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return idle;
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    unsigned cpu = 0;
    unsigned long long user, nice, system, idle_ticks;
    if (std::sscanf(line, "cpu%u %llu %llu %llu %llu", &cpu, &user, &nice, &system, &idle_ticks) ==
        5) {
      if (idle.size() <= cpu) idle.resize(cpu + 1, 0);
      idle[cpu] = idle_ticks;
    }
  }
  std::fclose(f);
  return idle;
}

// Confines this process, and the children it starts afterwards, to the CPU (among those it may
// use) that was idlest over a moment: the machine may be shared. Returns that CPU, or -1.
int pin_to_one_cpu() {
  cpu_set_t allowed;
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) return -1;
  const auto before = idle_times();
  std::this_thread::sleep_for(milliseconds(300));
  const auto after = idle_times();
  int best = -1;
  unsigned long long best_idle = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    const auto i = static_cast<std::size_t>(cpu);
    const unsigned long long idle =
        i < before.size() && i < after.size() ? after[i] - before[i] : 0;
    if (best < 0 || idle > best_idle) {
      best = cpu;
      best_idle = idle;
    }
  }
  if (best < 0) return -1;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(best, &one);
  return ::sched_setaffinity(0, sizeof one, &one) == 0 ? best : -1;
}

// The TLS block: usbnet over TLS (workers from `tls_worker`, a fresh one, and so a fresh
// connection, for each kind of work) beside the raw TLS pair.
void tls_rows(Child& agent, int agent_port, const BenchKeys& keys, int rounds, int iterations,
              std::size_t async_total, const std::function<Child*()>& tls_worker) {
  RawTlsServer raw(keys.agent_key, keys.client_key);
  // What usbnet negotiates is what a client made like the shim's gets from the agent.
  const std::string ours = negotiated_tls(agent_port, keys.client_key, keys.agent_key.public_key());
  const std::string theirs =
      negotiated_tls(raw.port(), keys.client_key, keys.agent_key.public_key());
  std::printf(
      "\nTLS 1.3: usbnet with paired keys (the worker's key authorized, the agent's pinned)\n"
      "beside raw TLS: two processes with usbnet's TLS setup and Ed25519 keys over the same\n"
      "loopback TCP, the same shapes as raw TCP's above (ping-pong; pipe xD and stream, the\n"
      "better one).\n"
      "usbnet negotiates %s; raw TLS %s.\n",
      ours.c_str(), theirs.c_str());
  if (ours != theirs) throw std::runtime_error("the raw TLS pair negotiates another cipher suite");
  print_column_heads("raw TLS");
  Child* worker = tls_worker();
  block({{"control round trip, 8 B, TLS",
          [&] { return ask(*worker, "control 8 " + std::to_string(iterations)); }}},
        {{"ping-pong",
          [&] { return static_cast<double>(raw.median_round_trip(8, 8, iterations).count()); }}},
        rounds, true, [](std::size_t) { return std::string("target <= 1.30"); });
  // The worker really spoke TLS: the agent's audit line names its key.
  if (slurp(agent.stderr_path).find("), TLS, key " + keys.client_key.public_key().fingerprint()) ==
      std::string::npos) {
    throw std::runtime_error("the TLS worker did not connect over TLS: " +
                             slurp(agent.stderr_path));
  }
  for (const bool in : {true, false}) {
    worker = tls_worker();
    std::vector<Measure> rows, baselines;
    for (int depth : kTlsDepths) {
      const std::string command = std::string("async ") + (in ? "in " : "out ") +
                                  std::to_string(depth) + " " + std::to_string(async_total);
      rows.push_back({std::string("async bulk ") + (in ? "IN" : "OUT") + ", 64 KiB, depth " +
                          std::to_string(depth) + ", TLS",
                      [&, command] { return ask(*worker, command); }});
      baselines.push_back({"pipe x" + std::to_string(depth), [&, depth] {
                             return raw.pipelined_throughput(kAsyncSize, depth, async_total, in);
                           }});
    }
    baselines.push_back(
        {"stream", [&] { return raw.stream_throughput(kAsyncSize, async_total, in); }});
    block(rows, baselines, rounds, false,
          [](std::size_t) { return std::string("target >= 0.75"); });
  }
}

int driver(const char* self, const Options& o) {
  // A worker that died is reported through its pipe, not by killing the driver.
  std::signal(SIGPIPE, SIG_IGN);
  const int cpu = o.one_cpu ? pin_to_one_cpu() : -1;
  const fs::path dir = fs::canonical("/proc/self/exe").parent_path();
  const fs::path agent = dir / "../agent/usbnet-agent";
  const fs::path shim = dir / "../interpose/libusbnet.so";
  if (!fs::exists(agent) || !fs::exists(shim)) {
    std::fprintf(stderr, "usbnet-bench: run it from the build tree (no %s or %s)\n", agent.c_str(),
                 shim.c_str());
    return 2;
  }
  const BenchKeys keys;
  std::vector<std::string> agent_args{
      agent.string(), "--listen",    "127.0.0.1:0", "--no-usb",    "--simulate",
      "loopback",     "--log-level", "info",        "--state-dir", keys.state_dir().string()};
  if (!o.piece_size.empty()) agent_args.insert(agent_args.end(), {"--piece-size", o.piece_size});
  Child agent_process = spawn(agent_args, {});
  std::string port;
  for (int i = 0; i < 100 && port.empty(); ++i) {
    std::smatch m;
    const std::string log = slurp(agent_process.stderr_path);
    if (std::regex_search(log, m, std::regex(R"(\(port (\d+)\))"))) port = m[1];
    std::this_thread::sleep_for(milliseconds(50));
  }
  if (port.empty()) {
    std::fprintf(stderr, "usbnet-bench: the agent did not start\n");
    return 1;
  }
  // The plaintext workers: the agent is on loopback and not pinned in their (empty) directory.
  std::map<std::string, std::string> env{{"LD_PRELOAD", shim.string()},
                                         {"USBNET_AGENT", "127.0.0.1:" + port},
                                         {"USBNET_DEVICES", loopback_device::kVidPid},
                                         {"USBNET_CONFIG_DIR", keys.plain_client_dir().string()}};
  if (!o.piece_size.empty()) env["USBNET_PIECE_SIZE"] = o.piece_size;
  // The TLS workers: the agent pinned, their key authorized.
  keys.pin_agent("127.0.0.1:" + port);
  std::map<std::string, std::string> tls_env = env;
  tls_env["USBNET_CONFIG_DIR"] = keys.tls_client_dir().string();
  tls_env["USBNET_INSECURE"] = "0";
  Child worker_process = spawn({self, "--worker"}, env);
  const auto stop_worker = [&] {
    std::fprintf(worker_process.to, "quit\n");
    std::fflush(worker_process.to);
    std::fclose(worker_process.to);
    std::fclose(worker_process.from);
    ::waitpid(worker_process.pid, nullptr, 0);
    ::unlink(worker_process.stderr_path.c_str());
  };
  // A fresh worker, with a fresh connection to the agent, for each kind of work (unless
  // --one-connection): the raw side gets a fresh connection for every measurement, and a long
  // connection carries TCP state from one kind of traffic to the next (see README: BBR's
  // pacing after the 1 MiB transfers).
  const auto fresh_worker = [&] {
    if (o.one_connection) return;
    stop_worker();
    worker_process = spawn({self, "--worker"}, env);
  };
  RawTcpServer raw;

  const int rounds = o.rounds > 0 ? o.rounds : (o.quick ? 3 : 7);
  const int iterations = o.quick ? 300 : 1000;
  const std::size_t scale = o.quick ? 4 : 1;  // --quick moves a quarter of the bytes
  std::printf(
      "usbnet-bench: usbnet (agent + libusbnet.so, simulated loopback device) beside raw\n"
      "loopback TCP doing the same work; %d interleaved rounds, medians compared.\n"
      "raw TCP is two processes with usbnet's socket options (TCP_NODELAY, Reno on loopback),\n"
      "the same sizes, direction and byte count:\n"
      "  ping-pong  control: 8-byte request, N-byte answer, one at a time (median round trip)\n"
      "  req/resp   sync bulk: 8-byte request, N-byte answer, one at a time\n"
      "  async: the best of simple programs moving the same bytes in 64 KiB messages, the\n"
      "  machine's streaming limit, whatever usbnet's queue depth:\n"
      "    pipe xD  D 64 KiB answers to 8-byte requests in flight (IN), or D 64 KiB messages\n"
      "             acknowledged with 8 bytes (OUT), for D = 1 to 32\n"
      "    stream   one way, 64 KiB writes and reads\n"
      "  (listed too, for IN: pipe xD reading into D buffers in turn, as a queue of D transfers\n"
      "  must; slower on a small cache, and so never the baseline)\n",
      rounds);
  if (cpu >= 0) {
    std::printf("Every process runs on CPU %d (--cpus any lets the scheduler place them).\n\n",
                cpu);
  } else {
    std::printf("The scheduler places the processes (figures flip between placements).\n\n");
  }
  print_column_heads();
  const auto no_note = [](std::size_t) { return std::string(); };
  int status = 0;
  try {
    for (std::size_t size : kControlSizes) {
      block({{"control round trip, " + std::to_string(size) + " B",
              [&] {
                return ask(worker_process,
                           "control " + std::to_string(size) + " " + std::to_string(iterations));
              }}},
            {{"ping-pong",
              [&] {
                return static_cast<double>(raw.median_round_trip(8, size, iterations).count());
              }}},
            rounds, true, [](std::size_t) { return std::string("target <= 1.30"); });
    }
    fresh_worker();
    for (std::size_t size : kBulkSizes) {
      // Enough transfers for a few hundred milliseconds at typical rates.
      const std::size_t total = std::min<std::size_t>(size * 16384, 512u << 20) / scale;
      block({{"sync bulk IN, " + std::to_string(size / 1024) + " KiB",
              [&] {
                return ask(worker_process,
                           "sync_in " + std::to_string(size) + " " + std::to_string(total));
              }}},
            {{"req/resp", [&] { return raw.request_response_throughput(8, size, total); }}}, rounds,
            false, no_note);
    }
    const std::size_t async_total = (256u << 20) / scale;
    for (const bool in : {true, false}) {
      fresh_worker();
      std::vector<Measure> ours, baselines;
      for (int depth : kDepths) {
        ours.push_back({std::string("async bulk ") + (in ? "IN" : "OUT") + ", 64 KiB, depth " +
                            std::to_string(depth),
                        [&, depth] {
                          return ask(worker_process, std::string("async ") + (in ? "in " : "out ") +
                                                         std::to_string(depth) + " " +
                                                         std::to_string(async_total));
                        }});
        baselines.push_back({"pipe x" + std::to_string(depth), [&, depth] {
                               return raw.pipelined_throughput(kAsyncSize, depth, async_total, in);
                             }});
      }
      baselines.push_back(
          {"stream", [&] { return raw.stream_throughput(kAsyncSize, async_total, in); }});
      if (in) {
        // For the record, not the baseline (never the best): raw TCP reading into as many
        // buffers as a queue of that depth has, as the program under usbnet must.
        for (int depth : {8, 16, 32}) {
          baselines.push_back(
              {"pipe x" + std::to_string(depth) + " into " + std::to_string(depth) + " buffers",
               [&, depth] {
                 return raw.pipelined_throughput(kAsyncSize, depth, async_total, in, depth);
               }});
        }
      }
      block(ours, baselines, rounds, false, [](std::size_t i) {
        return kDepths[i] >= 8 ? std::string("target >= 0.75") : std::string();
      });
    }
    if (o.tls) {
      tls_rows(agent_process, std::stoi(port), keys, rounds, iterations, async_total, [&] {
        stop_worker();
        worker_process = spawn({self, "--worker"}, tls_env);
        return &worker_process;
      });
      stop_worker();
      worker_process = spawn({self, "--worker"}, env);
    }
    if (!o.delays_ms.empty()) {
      std::printf(
          "\nDelayed links: usbnet (worker -> proxy -> agent) and raw TCP (client -> proxy ->\n"
          "server) through the same delaying proxy, which holds every byte half the round trip\n"
          "in each direction; 64 KiB transfers, async with %d in flight beside a raw pipe as\n"
          "deep. Through the 0 ms proxy both sides pay its copies and wake-ups.\n",
          kDelayedDepth);
      print_column_heads();
    }
    for (const double rtt_ms : o.delays_ms) {
      const auto rtt = std::chrono::microseconds(std::llround(rtt_ms * 1000));
      // About half a second of work per measurement, at least a few round trips.
      const auto fitting = [&](std::size_t per_round_trip, std::size_t at_least) {
        if (rtt.count() == 0) return 4096 * per_round_trip / scale;
        return std::max<std::size_t>(at_least, per_round_trip * 500'000 / rtt.count());
      };
      DelayProxy to_agent(std::stoi(port), rtt), to_raw(raw.port(), rtt);
      raw.connect_through(to_raw.port());
      std::map<std::string, std::string> delayed_env = env;
      delayed_env["USBNET_AGENT"] = "127.0.0.1:" + std::to_string(to_agent.port());
      stop_worker();
      worker_process = spawn({self, "--worker"}, delayed_env);
      char link[32];
      std::snprintf(link, sizeof link, ", %g ms RTT", rtt_ms);
      const int round_trips = static_cast<int>(
          rtt.count() == 0 ? iterations : std::max<std::size_t>(20, 300'000 / rtt.count()));
      block({{"control round trip, 64 B" + std::string(link),
              [&] { return ask(worker_process, "control 64 " + std::to_string(round_trips)); }}},
            {{"ping-pong",
              [&] {
                return static_cast<double>(raw.median_round_trip(8, 64, round_trips).count());
              }}},
            rounds, true, no_note);
      const std::size_t sync_total = kAsyncSize * fitting(1, 20);
      block({{"sync bulk IN, 64 KiB" + std::string(link),
              [&] { return ask(worker_process, "sync_in 65536 " + std::to_string(sync_total)); }}},
            {{"req/resp",
              [&] { return raw.request_response_throughput(8, kAsyncSize, sync_total); }}},
            rounds, false, no_note);
      const std::size_t async_total = kAsyncSize * fitting(kDelayedDepth, 64);
      for (const bool in : {true, false}) {
        const std::string depth = std::to_string(kDelayedDepth);
        block({{std::string("async bulk ") + (in ? "IN" : "OUT") + ", depth " + depth + link,
                [&] {
                  return ask(worker_process, std::string("async ") + (in ? "in " : "out ") + depth +
                                                 " " + std::to_string(async_total));
                }}},
              {{"pipe x" + depth,
                [&] {
                  return raw.pipelined_throughput(kAsyncSize, kDelayedDepth, async_total, in);
                }}},
              rounds, false, no_note);
      }
      // The worker leaves before its proxy does.
      stop_worker();
      worker_process = spawn({self, "--worker"}, env);
      raw.connect_through(0);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "usbnet-bench: %s\n", e.what());
    status = 1;
  }
  stop_worker();
  ::kill(agent_process.pid, SIGTERM);
  ::waitpid(agent_process.pid, nullptr, 0);
  ::unlink(agent_process.stderr_path.c_str());
  return status;
}

// "0,1,10" -> {0, 1, 10}; "none" -> {}. False on anything else (negative, over 1 s, junk).
bool parse_delays(const std::string& text, std::vector<double>& delays) {
  delays.clear();
  if (text == "none") return true;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    char* end = nullptr;
    const double ms = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(ms >= 0 && ms <= 1000)) return false;
    delays.push_back(ms);
    at = comma + 1;
  }
  return !delays.empty();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  bool is_worker = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--worker") {
      is_worker = true;
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--rounds" && i + 1 < argc) {
      o.rounds = std::atoi(argv[++i]);
    } else if (a == "--piece-size" && i + 1 < argc) {
      o.piece_size = argv[++i];
    } else if (a == "--one-connection") {
      o.one_connection = true;
    } else if (a == "--tls" || a == "--no-tls") {
      o.tls = a == "--tls";
    } else if (a == "--delays" && i + 1 < argc) {
      if (!parse_delays(argv[++i], o.delays_ms)) {
        std::fprintf(stderr, "usbnet-bench: --delays wants round trips in ms (0,1,10) or none\n");
        return 2;
      }
    } else if (a == "--cpus" && i + 1 < argc &&
               (argv[i + 1] == std::string("one") || argv[i + 1] == std::string("any"))) {
      o.one_cpu = argv[++i] == std::string("one");
    } else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--rounds N] [--piece-size BYTES] [--cpus one|any] "
                   "[--one-connection] [--tls|--no-tls] [--delays MS,...|none]\n",
                   argv[0]);
      return 2;
    }
  }
  if (is_worker) return worker();
  try {
    return driver(argv[0], o);
  } catch (const std::exception& e) {
    // Setting up (the keys' directory, the raw servers) failed.
    std::fprintf(stderr, "usbnet-bench: %s\n", e.what());
    return 1;
  }
}
