// The subcommands of nicoffloadctl that talk to nicoffloadd: status, port,
// remote, rules, counters, reconcile, trace, top and sim. Each sends its
// request over the control socket (cli_common.h: callDaemon) and prints the
// reply as text, or as JSON with --json.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli_common.h"
#include "nicoffload/common/file_read.h"
#include "nicoffload/model/json_input.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/trace/trace.h"

namespace nicoffload::cli {
namespace {

void printTable(const nlohmann::json& rows,
                std::initializer_list<std::pair<const char*, const char*>> cols) {
  auto cell = [](const nlohmann::json& row, const char* key) {
    const auto ptr = nlohmann::json::json_pointer(key);
    const auto v = row.contains(ptr) ? row[ptr] : nlohmann::json();
    return v.is_string() ? v.get<std::string>() : v.is_null() ? std::string("-") : v.dump();
  };
  std::vector<std::size_t> width;
  for (const auto& [title, key] : cols) {
    std::size_t w = std::strlen(title);
    for (const auto& row : rows) w = std::max(w, cell(row, key).size());
    width.push_back(w + 2);
  }
  std::size_t i = 0;
  for (const auto& [title, key] : cols) std::printf("%-*s", static_cast<int>(width[i++]), title);
  std::printf("\n");
  for (const auto& row : rows) {
    i = 0;
    for (const auto& [title, key] : cols)
      std::printf("%-*s", static_cast<int>(width[i++]), cell(row, key).c_str());
    std::printf("\n");
  }
}

// A remotes file (remote add --file, remote sync --file): a regular file of
// at most kMaxInputFileBytes, or stdin for "-" (as much as one request may
// carry).
Result<nlohmann::json> readRemotesFile(const std::string& file) {
  if (file != "-") return model::readJsonFile(file, kMaxInputFileBytes, "--file");
  auto text = readBoundedFd(STDIN_FILENO, kMaxInputFileBytes, "stdin");
  if (!text) return text.error();
  return model::parseJsonInput(*text, "stdin");
}

// remote add --file: one remote (an object) is a remote.add; a list (an
// array, or {"remotes": [...]}) is a batch of remote.add, all or nothing.
Result<nlohmann::json> remoteAddRequest(const nlohmann::json& doc, const std::string& file) {
  const bool wrapped = doc.is_object() && doc.contains("remotes");
  if (doc.is_object() && !wrapped) return nlohmann::json{{"op", "remote.add"}, {"remote", doc}};
  const nlohmann::json& list = wrapped ? doc["remotes"] : doc;
  if (!list.is_array() || list.empty())
    return makeError(ErrorCode::kInvalidValue, wrapped ? file + ": remotes" : file,
                     list.is_array() ? "[]" : list.type_name(),
                     "expected one remote (a JSON object) or a non-empty list of them (an array, "
                     "or {\"remotes\": [...]})");
  if (wrapped && doc.size() != 1)
    return makeError(ErrorCode::kUnknownField, file, "",
                     "a {\"remotes\": [...]} file holds the key \"remotes\" only");
  nlohmann::json ops = nlohmann::json::array();
  for (const auto& r : list) ops.push_back({{"op", "remote.add"}, {"remote", r}});
  return nlohmann::json{{"op", "batch"}, {"ops", std::move(ops)}};
}

// The packet options of `trace` and `sim send`: each a field of the
// daemon's packet spec (trace/trace.h).
const std::vector<std::pair<const char*, const char*>> kPacketOptions = {
    {"in",
     "where the packet enters: uplink, a port <vm uuid>/<nic>, its representor or vf<N> "
     "(required)"},
    {"src-mac", "source MAC (default: the port's MAC; from the uplink, the next hop's)"},
    {"dst-mac", "destination MAC (default: the gateway MAC; from the uplink, the uplink's)"},
    {"ethertype",
     "ipv4 (default; ipv6 when an address given is IPv6), ipv6, arp, or an EtherType number"},
    {"src-ip", "IPv4 or IPv6 source (default: the port's first address of the packet's family)"},
    {"dst-ip", "IPv4 or IPv6 destination (required for IP)"},
    {"proto", "udp (default), tcp or icmp (ICMPv6 in IPv6)"},
    {"src-port", "UDP/TCP source port (default 40000)"},
    {"dst-port", "UDP/TCP destination port (default 5001 UDP, 80 TCP)"},
    {"ttl", "IPv4 TTL or IPv6 hop limit (default 64)"},
    {"payload", "payload bytes (default 64)"},
    {"arp-op", "ARP operation: request (default) or reply"},
    {"spa", "ARP sender protocol address (default: the port's first address)"},
    {"tpa", "ARP target protocol address (required for ARP; implies --ethertype arp)"},
    {"vni", "VXLAN: the VNI; the fields above then describe the inner packet"},
    {"outer-src-ip", "VXLAN: the sending VTEP, IPv4 or IPv6 like this host's (required for VXLAN)"},
    {"outer-dst-ip", "VXLAN: the receiving VTEP (default: this host's)"},
    {"outer-src-mac", "VXLAN: outer source MAC"},
    {"outer-dst-mac", "VXLAN: outer destination MAC (default: the uplink's)"},
    {"vxlan-port", "VXLAN: outer UDP destination port (default: the host's)"}};

// --- top: what a sample shows ---

struct TopArgs {
  double interval_s = 2.0;
  int count = 0;      // samples to print; 0 = until interrupted
  bool once = false;  // one sample of the totals, no rates
  std::string vm;
};

// One port's figures as `traffic` gives them; null traffic (not read yet) = zeros.
struct TopRow {
  std::string vm;
  unsigned nic = 0;
  std::uint64_t
      v[7]{};  // rx hw pkts, rx sw pkts, tx hw pkts, tx sw pkts, drops, rx bytes, tx hw bytes
};

std::vector<TopRow> topRows(const nlohmann::json& reply) {
  std::vector<TopRow> rows;
  for (const auto& p : reply.at("ports")) {
    TopRow row;
    row.vm = p.at("vm").get<std::string>();
    row.nic = p.at("nic").get<unsigned>();
    const auto& t = p.at("traffic");
    if (!t.is_null()) {
      static const char* const paths[7] = {
          "/rx/hw/packets",      "/rx/sw/packets", "/tx/hw/packets", "/tx/sw/packets",
          "/tx_dropped/packets", "/rx/bytes",      "/tx/hw/bytes"};
      for (int i = 0; i < 7; ++i)
        row.v[i] = t.at(nlohmann::json::json_pointer(paths[i])).get<std::uint64_t>();
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string human(double v) {
  char buf[32];
  const char* unit[] = {"", "k", "M", "G", "T"};
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  std::snprintf(buf, sizeof buf, u ? "%.1f%s" : "%.0f%s", v, unit[u]);
  return buf;
}

// nicoffloadctl top: the ports' traffic from the hardware counters and the
// representors, refreshed every interval (each sample asks nicoffloadd to
// read the counters then: `traffic` with "refresh"). Rates are the change
// between two samples over the time between them.
int runTop(const DaemonOptions& daemon, const TopArgs& a) {
  nlohmann::json req = {{"op", "traffic"}, {"refresh", true}};
  if (!a.vm.empty()) req["vm"] = a.vm;
  const bool tty = ::isatty(STDOUT_FILENO) == 1 && !a.once && !daemon.json;
  std::map<std::pair<std::string, unsigned>, TopRow> previous;
  auto previous_at = std::chrono::steady_clock::now();
  for (int sample = 0; a.count == 0 || sample < (a.once ? 1 : a.count + 1); ++sample) {
    int rc = kExitOk;
    auto r = callDaemon(daemon, req, rc);
    if (!r) return rc;
    const auto now = std::chrono::steady_clock::now();
    if (daemon.json) {
      std::cout << r->dump() << "\n" << std::flush;
    } else {
      const auto rows = topRows(*r);
      const double dt = std::chrono::duration<double>(now - previous_at).count();
      const bool rates = !a.once && sample > 0 && dt > 0;
      if (tty) std::printf("\033[H\033[2J");
      if (!a.once && sample == 0 && a.count != 0) {  // the first sample only sets the baseline
        for (const auto& row : rows) previous[{row.vm, row.nic}] = row;
        previous_at = now;
        std::this_thread::sleep_for(std::chrono::duration<double>(a.interval_s));
        continue;
      }
      const auto& sweep = (*r)["sweep"];
      std::printf(
          "nicoffload top: %zu ports; %s; counters read in %.2f ms (loop thread)%s\n", rows.size(),
          rates ? ("rates over " + human(dt) + " s").c_str()
                : "totals since the daemon followed each port",
          sweep.value("last_busy_ms", 0.0),
          sweep.value("last_error", std::string()).empty() ? ""
                                                           : "; some reads failed (see status)");
      std::printf("%-36s %4s %10s %10s %10s %10s %10s %10s %10s\n", "VM", "NIC",
                  rates ? "RX pps hw" : "RX pkt hw", rates ? "RX pps sw" : "RX pkt sw",
                  rates ? "RX bit/s" : "RX bytes", rates ? "TX pps hw" : "TX pkt hw",
                  rates ? "TX pps sw" : "TX pkt sw", rates ? "TXbit/s hw" : "TX byte hw",
                  rates ? "drop/s" : "dropped");
      for (const auto& row : rows) {
        double v[7];
        const auto it = previous.find({row.vm, row.nic});
        for (int i = 0; i < 7; ++i) {
          const std::uint64_t before =
              rates && it != previous.end() && it->second.v[i] <= row.v[i] ? it->second.v[i] : 0;
          v[i] =
              rates ? static_cast<double>(row.v[i] - before) / dt : static_cast<double>(row.v[i]);
        }
        const double bit = rates ? 8 : 1;
        std::printf("%-36s %4u %10s %10s %10s %10s %10s %10s %10s\n", row.vm.c_str(), row.nic,
                    human(v[0]).c_str(), human(v[1]).c_str(), human(v[5] * bit).c_str(),
                    human(v[2]).c_str(), human(v[3]).c_str(), human(v[6] * bit).c_str(),
                    human(v[4]).c_str());
        previous[{row.vm, row.nic}] = row;
      }
      std::fflush(stdout);
    }
    previous_at = now;
    if (a.once || (a.count != 0 && sample >= a.count)) break;
    std::this_thread::sleep_for(std::chrono::duration<double>(a.interval_s));
  }
  return kExitOk;
}

// --- status ---

int runStatus(const DaemonOptions& daemon) {
  int rc = kExitOk;
  auto r = callDaemon(daemon, {{"op", "status"}}, rc);
  if (!r) return rc;
  return printReply(daemon, *r, [&] {
    for (auto it = r->begin(); it != r->end(); ++it)
      std::printf("%-16s %s\n", it.key().c_str(),
                  it->is_string() ? it->get<std::string>().c_str() : it->dump().c_str());
  });
}

void addStatusCommand(CLI::App& app, Commands& commands) {
  auto daemon = std::make_shared<DaemonOptions>();
  auto* cmd =
      app.add_subcommand("status", "show nicoffloadd's state: host, backends, ports, rules");
  addDaemonOptions(cmd, *daemon);
  commands.push_back({cmd, [daemon] { return runStatus(*daemon); }});
}

// --- port add, del, show, list ---

struct PortArgs {
  DaemonOptions daemon;
  std::string vm, mac, representor, vdpa, file;
  int nic = 0, mtu = 0, queues = 0;
  long long vni = -1, vf = -1;
  std::vector<std::string> addresses;
};

// A port's status as port.get (port show) and port.add reply it.
void printPortStatus(const nlohmann::json& r) {
  const auto& st = r.contains("status") ? r["status"] : r;
  std::printf("port %s/%s: %s, vf %s, rules hw %s sw %s\n",
              st["port"]["vm"].get<std::string>().c_str(), st["port"]["nic"].dump().c_str(),
              st["state"].get<std::string>().c_str(),
              st["port"].value("vf", nlohmann::json()).dump().c_str(),
              st["rules"]["hw"].dump().c_str(), st["rules"]["sw"].dump().c_str());
  if (st["rules"].contains("list"))
    for (const auto& rule : st["rules"]["list"])
      std::printf("  %s %-14s %s  %s\n", rule["id"].get<std::string>().c_str(),
                  rule["class"].get<std::string>().c_str(),
                  rule["placement"].get<std::string>().c_str(),
                  rule["reason"].get<std::string>().c_str());
  for (const auto& f : st["software_path_failures"])
    std::printf("  kernel object failing: %s: %s\n", f["object"].get<std::string>().c_str(),
                f["error"]["message"].get<std::string>().c_str());
  if (const auto t = st.value("traffic", nlohmann::json()); t.is_object())
    std::printf(
        "  traffic: rx %s packets (hw %s, sw %s); tx hw %s, sw %s; dropped %s (%s ms ago)\n",
        t["rx"]["packets"].dump().c_str(), t["rx"]["hw"]["packets"].dump().c_str(),
        t["rx"]["sw"]["packets"].dump().c_str(), t["tx"]["hw"]["packets"].dump().c_str(),
        t["tx"]["sw"]["packets"].dump().c_str(), t["tx_dropped"]["packets"].dump().c_str(),
        t["age_ms"].dump().c_str());
}

int runPortAdd(const CLI::App& cmd, const PortArgs& a) {
  nlohmann::json port;
  if (a.file.empty()) {
    std::string missing;
    for (const char* name : {"--vm", "--nic", "--mac", "--address"})
      if (cmd.count(name) == 0) missing += std::string(missing.empty() ? "" : ", ") + name;
    if (!missing.empty()) {
      std::fprintf(stderr,
                   "nicoffloadctl: error: port add: give --file, or --vm, --nic, --mac and "
                   "--address (missing: %s)\n",
                   missing.c_str());
      return kExitInput;
    }
  }
  if (!a.file.empty()) {
    auto doc = model::readJsonFile(a.file, kMaxInputFileBytes, "--file");
    if (!doc) return fail(doc.error());
    port = *doc;
  } else {
    port = {{"vm", a.vm}, {"nic", a.nic}, {"mac", a.mac}, {"addresses", a.addresses}};
    if (a.vni >= 0) port["vni"] = a.vni;
    if (a.vf >= 0) port["vf"] = a.vf;
    if (!a.representor.empty()) port["representor"] = a.representor;
    if (a.mtu) port["mtu"] = a.mtu;
    if (a.queues) port["queues"] = a.queues;
    if (!a.vdpa.empty()) port["vdpa"] = a.vdpa;
  }
  int rc = kExitOk;
  auto r = callDaemon(a.daemon, {{"op", "port.add"}, {"port", port}}, rc);
  if (!r) return rc;
  return printReply(a.daemon, *r, [&] { printPortStatus(*r); });
}

void addPortAddCommand(CLI::App& port_cmd, Commands& commands) {
  auto a = std::make_shared<PortArgs>();
  auto* cmd = port_cmd.add_subcommand(
      "add", "add or update a port (idempotent): give --file, or --vm, --nic, --mac and --address");
  cmd->footer(
      "Required: either --file FILE (the port as a JSON object), or --vm, --nic, --mac and at\n"
      "least one --address; the other options only go with the latter.");
  addDaemonOptions(cmd, a->daemon);
  cmd->add_option("--vm", a->vm, "VM (libvirt domain) UUID");
  cmd->add_option("--nic", a->nic, "NIC index in the domain");
  cmd->add_option("--mac", a->mac, "guest MAC");
  cmd->add_option("--address", a->addresses, "a /32 or /128 of the VM (repeat for more)");
  cmd->add_option("--vni", a->vni, "VXLAN VNI (vxlan underlay)");
  cmd->add_option("--vf", a->vf, "VF index (default: the lowest free VF)");
  cmd->add_option("--representor", a->representor, "representor netdev (default pf0vf<vf>)");
  cmd->add_option("--mtu", a->mtu, "MTU");
  cmd->add_option("--queues", a->queues, "virtqueue pairs");
  cmd->add_option("--vdpa", a->vdpa, "none, kernel, dpdk or sim (default: the host's)");
  auto* file_opt =
      cmd->add_option("--file", a->file, "the port as a JSON object (instead of the options)")
          ->check(CLI::ExistingFile);
  for (const char* name : {"--vm", "--nic", "--mac", "--address", "--vni", "--vf", "--representor",
                           "--mtu", "--queues", "--vdpa"})
    file_opt->excludes(cmd->get_option(name));
  commands.push_back({cmd, [cmd, a] { return runPortAdd(*cmd, *a); }});
}

int runPortDel(const PortArgs& a) {
  int rc = kExitOk;
  auto r = callDaemon(a.daemon, {{"op", "port.remove"}, {"vm", a.vm}, {"nic", a.nic}}, rc);
  if (!r) return rc;
  return printReply(a.daemon, *r, [&] {
    std::printf("%s %s\n", (*r)["port"].get<std::string>().c_str(),
                (*r)["removed"].get<bool>() ? "removed" : "was not there");
  });
}

int runPortShow(const PortArgs& a) {
  int rc = kExitOk;
  auto r = callDaemon(a.daemon, {{"op", "port.get"}, {"vm", a.vm}, {"nic", a.nic}}, rc);
  if (!r) return rc;
  return printReply(a.daemon, *r, [&] { printPortStatus(*r); });
}

// port del and port show: one port, named by --vm and --nic.
void addPortByKeyCommand(CLI::App& port_cmd, Commands& commands, const char* name,
                         const char* description, int (*run)(const PortArgs&)) {
  auto a = std::make_shared<PortArgs>();
  auto* cmd = port_cmd.add_subcommand(name, description);
  addDaemonOptions(cmd, a->daemon);
  cmd->add_option("--vm", a->vm, "VM UUID")->required();
  cmd->add_option("--nic", a->nic, "NIC index")->required();
  commands.push_back({cmd, [run, a] { return run(*a); }});
}

int runPortList(const DaemonOptions& daemon) {
  int rc = kExitOk;
  auto r = callDaemon(daemon, {{"op", "port.list"}}, rc);
  if (!r) return rc;
  return printReply(daemon, *r, [&] {
    printTable(*r, {{"VM", "/port/vm"},
                    {"NIC", "/port/nic"},
                    {"MAC", "/port/mac"},
                    {"VF", "/port/vf"},
                    {"STATE", "/state"},
                    {"HW", "/rules/hw"},
                    {"SW", "/rules/sw"}});
  });
}

void addPortCommands(CLI::App& app, Commands& commands) {
  auto* port_cmd = app.add_subcommand("port", "manage ports (VM NICs) in nicoffloadd");
  port_cmd->require_subcommand(1);
  addPortAddCommand(*port_cmd, commands);
  addPortByKeyCommand(*port_cmd, commands, "del",
                      "remove a port (removing a port that is gone succeeds)", runPortDel);
  addPortByKeyCommand(*port_cmd, commands, "show", "show one port: its rules and their placement",
                      runPortShow);
  auto daemon = std::make_shared<DaemonOptions>();
  auto* list_cmd = port_cmd->add_subcommand("list", "list the ports");
  addDaemonOptions(list_cmd, *daemon);
  commands.push_back({list_cmd, [daemon] { return runPortList(*daemon); }});
}

// --- remote add, del, list, sync ---

// A reply of remote add, del or sync: printed as JSON either way.
int printRemoteReply(const DaemonOptions& daemon, const nlohmann::json& request) {
  int rc = kExitOk;
  auto r = callDaemon(daemon, request, rc);
  if (!r) return rc;
  return printReply(daemon, *r, [&] { std::cout << r->dump(2) << "\n"; });
}

struct RemoteAddArgs {
  DaemonOptions daemon;
  std::string address, next_hop, vtep, origin, file;
  long long vni = -1;
};

int runRemoteAdd(const CLI::App& cmd, const RemoteAddArgs& a) {
  nlohmann::json req;
  if (!a.file.empty()) {
    auto doc = readRemotesFile(a.file);
    if (!doc) return fail(doc.error());
    auto r = remoteAddRequest(*doc, a.file);
    if (!r) return fail(r.error());
    req = std::move(r).value();
  } else {
    if (cmd.count("--address") == 0) {
      std::fprintf(stderr,
                   "nicoffloadctl: error: remote add: give --file, or --address (missing: "
                   "--address)\n");
      return kExitInput;
    }
    nlohmann::json remote = {{"address", a.address}};
    if (!a.next_hop.empty()) remote["next_hop"] = a.next_hop;
    if (!a.vtep.empty()) remote["vtep"] = a.vtep;
    if (a.vni >= 0) remote["vni"] = a.vni;
    if (!a.origin.empty()) remote["origin"] = a.origin;
    req = {{"op", "remote.add"}, {"remote", remote}};
  }
  return printRemoteReply(a.daemon, req);
}

void addRemoteAddCommand(CLI::App& remote_cmd, Commands& commands) {
  auto a = std::make_shared<RemoteAddArgs>();
  auto* cmd = remote_cmd.add_subcommand(
      "add", "add or update a remote endpoint (idempotent): give --file, or --address");
  cmd->footer(
      "Required: either --file FILE (one remote as a JSON object, or a list of them: an array or\n"
      "{\"remotes\": [...]}, added all or nothing in one batch), or --address; the other options\n"
      "only go with the latter.");
  addDaemonOptions(cmd, a->daemon);
  cmd->add_option("--address", a->address, "the remote VM's /32 or /128");
  cmd->add_option("--next-hop", a->next_hop,
                  "underlay next hop (routed underlay; an IPv6 one for a /128)");
  cmd->add_option("--vtep", a->vtep, "remote VTEP (vxlan underlay)");
  cmd->add_option("--vni", a->vni, "VNI (vxlan underlay)");
  cmd->add_option("--origin", a->origin,
                  "api (the default, and the only origin remote add takes: a named "
                  "origin's set changes through remote sync)");
  auto* file_opt = cmd->add_option("--file", a->file,
                                   "one remote (a JSON object) or a list of them (an array, or "
                                   "{\"remotes\": [...]}) instead of the options; - reads stdin")
                       ->check(CLI::ExistingFile | CLI::IsMember({"-"}));
  for (const char* name : {"--address", "--next-hop", "--vtep", "--vni", "--origin"})
    file_opt->excludes(cmd->get_option(name));
  commands.push_back({cmd, [cmd, a] { return runRemoteAdd(*cmd, *a); }});
}

struct RemoteDelArgs {
  DaemonOptions daemon;
  std::string address;
};

void addRemoteDelCommand(CLI::App& remote_cmd, Commands& commands) {
  auto a = std::make_shared<RemoteDelArgs>();
  auto* cmd = remote_cmd.add_subcommand("del", "remove a remote endpoint");
  addDaemonOptions(cmd, a->daemon);
  cmd->add_option("--address", a->address, "the remote /32 or /128")->required();
  commands.push_back(
      {cmd, [a] {
         return printRemoteReply(a->daemon, {{"op", "remote.remove"}, {"address", a->address}});
       }});
}

struct RemoteListArgs {
  DaemonOptions daemon;
  std::string origin;
  bool refused = false;
};

int runRemoteList(const RemoteListArgs& a) {
  nlohmann::json req = {{"op", "remote.list"}};
  if (!a.origin.empty()) req["origin"] = a.origin;
  if (a.refused) req = {{"op", "remote.list"}, {"refused", true}};
  if (a.refused && !a.origin.empty())
    return fail(makeError(ErrorCode::kConflict, "--refused", "",
                          "--refused lists the learned routes not followed; --origin does "
                          "not apply"));
  int rc = kExitOk;
  nlohmann::json all = nlohmann::json::array();
  const bool ok = callDaemonPaged(
      a.daemon, req, a.refused ? "refused" : "remotes",
      [&](const nlohmann::json& x) {
        if (a.daemon.json) {
          all.push_back(x);
          return;
        }
        if (a.refused) {
          std::printf("%-18s %-12s %s\n", x.value("address", "").c_str(),
                      x.value("origin", "").c_str(), x.value("reason", "").c_str());
          return;
        }
        std::printf("%-18s %-16s %-16s %-9s %s\n", x.value("address", "").c_str(),
                    x.value("next_hop", "").c_str(), x.value("vtep", "").c_str(),
                    x.contains("vni") ? x["vni"].dump().c_str() : "",
                    x.value("origin", "").c_str());
      },
      rc);
  if (!ok) return rc;
  if (a.daemon.json) std::cout << all.dump(2) << "\n";
  return kExitOk;
}

void addRemoteListCommand(CLI::App& remote_cmd, Commands& commands) {
  auto a = std::make_shared<RemoteListArgs>();
  auto* cmd = remote_cmd.add_subcommand("list", "list remote endpoints (page by page)");
  addDaemonOptions(cmd, a->daemon);
  cmd->add_option("--origin", a->origin, "only the remotes of this origin");
  cmd->add_flag("--refused", a->refused,
                "instead: the routes learned from the kernel that are not followed, each "
                "with its reason (an underlay address, kernel.learn_prefixes, ...)");
  commands.push_back({cmd, [a] { return runRemoteList(*a); }});
}

struct RemoteSyncArgs {
  DaemonOptions daemon;
  std::string origin, file;
};

int runRemoteSync(const RemoteSyncArgs& a) {
  auto doc = readRemotesFile(a.file);
  if (!doc) return fail(doc.error());
  const nlohmann::json list =
      doc->is_object() && doc->contains("remotes") ? (*doc)["remotes"] : *doc;
  return printRemoteReply(a.daemon,
                          {{"op", "remote.sync"}, {"origin", a.origin}, {"remotes", list}});
}

void addRemoteSyncCommand(CLI::App& remote_cmd, Commands& commands) {
  auto a = std::make_shared<RemoteSyncArgs>();
  auto* cmd = remote_cmd.add_subcommand(
      "sync", "make the remotes of one origin exactly those of a file (added, updated, removed)");
  addDaemonOptions(cmd, a->daemon);
  cmd->add_option("--origin", a->origin, "the origin whose set this is, e.g. bgp-ctl")->required();
  cmd->add_option("--file", a->file,
                  "JSON: an array of remotes, or {\"remotes\": [...]}; - reads stdin")
      ->required();
  commands.push_back({cmd, [a] { return runRemoteSync(*a); }});
}

void addRemoteCommands(CLI::App& app, Commands& commands) {
  auto* remote_cmd = app.add_subcommand(
      "remote", "manage remote endpoints (other hypervisors' VM /32s and /128s)");
  remote_cmd->require_subcommand(1);
  addRemoteAddCommand(*remote_cmd, commands);
  addRemoteDelCommand(*remote_cmd, commands);
  addRemoteListCommand(*remote_cmd, commands);
  addRemoteSyncCommand(*remote_cmd, commands);
}

// --- rules, counters, reconcile ---

struct RulesArgs {
  DaemonOptions daemon;
  bool testpmd = false;
};

int runRules(const RulesArgs& a) {
  int rc = kExitOk;
  nlohmann::json all = nlohmann::json::array();
  const bool ok = callDaemonPaged(
      a.daemon, {{"op", "rules"}, {"testpmd", a.testpmd}}, "rules",
      [&](const nlohmann::json& rule) {
        if (a.daemon.json) {
          all.push_back(rule);
          return;
        }
        std::printf("%s %-14s %s  %s\n", rule["id"].get<std::string>().c_str(),
                    rule["class"].get<std::string>().c_str(),
                    rule["placement"].get<std::string>().c_str(),
                    rule["reason"].get<std::string>().c_str());
        if (rule.contains("testpmd"))
          for (const auto& line : rule["testpmd"])
            std::printf("    %s\n", line.get<std::string>().c_str());
      },
      rc);
  if (!ok) return rc;
  if (a.daemon.json) std::cout << all.dump(2) << "\n";
  return kExitOk;
}

void addRulesCommand(CLI::App& app, Commands& commands) {
  auto a = std::make_shared<RulesArgs>();
  auto* cmd =
      app.add_subcommand("rules", "list the installed rules with their placement and reason");
  addDaemonOptions(cmd, a->daemon);
  cmd->add_flag("--testpmd", a->testpmd, "print each rule in testpmd syntax too");
  commands.push_back({cmd, [a] { return runRules(*a); }});
}

// counters and reconcile: one op without arguments, the reply printed as JSON.
void addPlainOpCommand(CLI::App& app, Commands& commands, const char* name, const char* description,
                       const char* op) {
  auto daemon = std::make_shared<DaemonOptions>();
  auto* cmd = app.add_subcommand(name, description);
  addDaemonOptions(cmd, *daemon);
  commands.push_back({cmd, [daemon, op] {
                        int rc = kExitOk;
                        auto r = callDaemon(*daemon, {{"op", op}}, rc);
                        if (!r) return rc;
                        return printReply(*daemon, *r, [&] { std::cout << r->dump(2) << "\n"; });
                      }});
}

// --- trace and sim send: a packet spec from the packet options ---

// Adds the packet options to `cmd`, each bound to its field in `fields`.
void addPacketOptions(CLI::App* cmd, std::map<std::string, std::string>& fields) {
  for (const auto& [key, help] : kPacketOptions) {
    std::string field = key;
    std::replace(field.begin(), field.end(), '-', '_');
    cmd->add_option(std::string("--") + key, fields[field], help);
  }
}

// The packet spec: the fields whose option the command line gave.
nlohmann::json packetSpec(const CLI::App& cmd, const std::map<std::string, std::string>& fields) {
  nlohmann::json packet = nlohmann::json::object();
  for (const auto& [field, value] : fields) {
    std::string key = field;
    std::replace(key.begin(), key.end(), '_', '-');
    if (cmd.get_option("--" + key)->count() > 0) packet[field] = value;
  }
  return packet;
}

struct TraceArgs {
  DaemonOptions daemon;
  std::map<std::string, std::string> fields;
};

int runTrace(const CLI::App& cmd, const TraceArgs& a) {
  int rc = kExitOk;
  auto r = callDaemon(a.daemon, {{"op", "trace"}, {"packet", packetSpec(cmd, a.fields)}}, rc);
  if (!r) return rc;
  return printReply(a.daemon, *r, [&] {
    for (const auto& line : trace::traceText(*r)) std::printf("%s\n", line.c_str());
  });
}

void addTraceCommand(CLI::App& app, Commands& commands) {
  auto a = std::make_shared<TraceArgs>();
  auto* cmd = app.add_subcommand(
      "trace",
      "where one packet goes: through the rules the device holds, group by group (rule, class, "
      "placement and reason, actions, the packet as rewritten), then, when the hardware hands it "
      "to a representor, through the kernel software path (route lookup in the software path's "
      "namespace, proxy ARP, neighbour, VXLAN FDB); read-only, asks nicoffloadd");
  addDaemonOptions(cmd, a->daemon);
  addPacketOptions(cmd, a->fields);
  commands.push_back({cmd, [cmd, a] { return runTrace(*cmd, *a); }});
}

struct SimSendArgs {
  DaemonOptions daemon;
  std::map<std::string, std::string> fields;
  int count = 1;
};

int runSimSend(const CLI::App& cmd, const SimSendArgs& a) {
  int rc = kExitOk;
  auto r = callDaemon(
      a.daemon, {{"op", "sim.send"}, {"packet", packetSpec(cmd, a.fields)}, {"count", a.count}},
      rc);
  if (!r) return rc;
  return printReply(a.daemon, *r, [&] {
    std::printf("sent %s packet(s) from %s: %s (%s rules matched%s)\n", (*r)["sent"].dump().c_str(),
                (*r)["in"].get<std::string>().c_str(), (*r)["delivery"].get<std::string>().c_str(),
                (*r)["rules_matched"].dump().c_str(), (*r)["miss"].get<bool>() ? ", a miss" : "");
  });
}

void addSimCommands(CLI::App& app, Commands& commands) {
  auto a = std::make_shared<SimSendArgs>();
  auto* sim_cmd = app.add_subcommand("sim", "the simulated NIC (backends.flow = sim)");
  sim_cmd->require_subcommand(1);
  auto* cmd = sim_cmd->add_subcommand(
      "send",
      "send packets into the simulated NIC as if they came from the wire or a VM: they go through "
      "the rules it holds, whose counters count them (the same packet options as trace)");
  addDaemonOptions(cmd, a->daemon);
  cmd->add_option("--count", a->count, "how many copies (1..100000, default 1)")
      ->check(CLI::Range(1, 100000));
  addPacketOptions(cmd, a->fields);
  commands.push_back({cmd, [cmd, a] { return runSimSend(*cmd, *a); }});
}

// --- top ---

struct TopCommandArgs {
  DaemonOptions daemon;
  TopArgs top;
};

void addTopCommand(CLI::App& app, Commands& commands) {
  auto a = std::make_shared<TopCommandArgs>();
  auto* cmd = app.add_subcommand(
      "top",
      "live per-port traffic (VM NICs): packets and bytes the hardware rules counted (hw) and the "
      "representors carried (sw), as rates between two samples; each sample has nicoffloadd read "
      "the counters then");
  addDaemonOptions(cmd, a->daemon);
  cmd->add_option("--interval", a->top.interval_s, "seconds between samples (default 2)")
      ->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--count", a->top.count,
                  "print this many samples of rates, then stop (default: until interrupted)")
      ->check(CLI::Range(1, 1000000));
  cmd->add_flag("--once", a->top.once, "print the totals once and stop");
  cmd->add_option("--vm", a->top.vm, "only this VM's ports");
  commands.push_back({cmd, [a] { return runTop(a->daemon, a->top); }});
}

}  // namespace

void addDaemonCommands(CLI::App& app, Commands& commands) {
  addStatusCommand(app, commands);
  addPortCommands(app, commands);
  addRemoteCommands(app, commands);
  addRulesCommand(app, commands);
  addPlainOpCommand(app, commands, "counters", "show per-backend counters", "counters");
  addPlainOpCommand(app, commands, "reconcile", "run a full reconcile pass now", "reconcile");
  addTraceCommand(app, commands);
  addTopCommand(app, commands);
  addSimCommands(app, commands);
}

}  // namespace nicoffload::cli
