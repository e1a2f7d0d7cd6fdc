// Observability: the daemon's counters and gauges in the Prometheus text
// exposition format, served on a localhost HTTP endpoint (cpp-httplib) at
// /metrics. The daemon's loop publishes a fresh snapshot after every change;
// the HTTP thread only ever reads the last published text.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "nicoffload/common/error.h"

namespace nicoffload::daemon {

class MetricsRegistry {
 public:
  // name{labels} -> value, with a HELP/TYPE line per name.
  void set(const std::string& name, const std::string& labels, double value);
  void describe(const std::string& name, const std::string& type, const std::string& help);
  std::string render() const;  // Prometheus text format 0.0.4

 private:
  struct Family {
    std::string type = "gauge";
    std::string help;
    std::map<std::string, double> samples;  // labels -> value
  };
  std::map<std::string, Family> families_;
};

class MetricsServer {
 public:
  // Listens on host:port (host must be a loopback address). Errors: kIo.
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& host, int port);
  ~MetricsServer();
  void publish(std::string text);
  int port() const { return port_; }

 private:
  MetricsServer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace nicoffload::daemon
