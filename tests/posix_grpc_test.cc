// Stretch of issue 9: a unary gRPC call between two hosts with Debian's unmodified gRPC
// C++ 1.51, under //posix. Tagged manual: it records how far gRPC gets (NOTE, README).
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "posix/posix.h"
#include "sim/simulation.h"

namespace {

grpc::ByteBuffer Buffer(const std::string& text) {
  grpc::Slice slice(text);
  return grpc::ByteBuffer(&slice, 1);
}

std::string Text(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  (void)buffer.Dump(&slices);
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// Echoes the one request message of a unary call.
class EchoService : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Reactor : public grpc::ServerGenericBidiReactor {
     public:
      Reactor() { StartRead(&request_); }
      void OnReadDone(bool ok) override {
        if (!ok) return Finish(grpc::Status(grpc::StatusCode::INTERNAL, "no request"));
        reply_ = Buffer("echo: " + Text(request_));
        StartWriteAndFinish(&reply_, grpc::WriteOptions(), grpc::Status::OK);
      }
      void OnDone() override { delete this; }

     private:
      grpc::ByteBuffer request_;
      grpc::ByteBuffer reply_;
    };
    return new Reactor;
  }
};

void RunUnaryCall(bool same_host) {
  dsim::Simulation sim({.seed = 1});
  std::string reply;
  grpc::Status status(grpc::StatusCode::UNKNOWN, "not called");
  dsim::Host& server = sim.AddHost({.name = "server",
               .start =
                   [] {
                     EchoService service;
                     grpc::ServerBuilder builder;
                     builder.AddListeningPort("0.0.0.0:50051", grpc::InsecureServerCredentials());
                     builder.RegisterCallbackGenericService(&service);
                     std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
                     if (server == nullptr) return;
                     server->Wait();
                   },
               .addresses = {"10.0.0.1"}});
  auto client = [&] {
                     std::this_thread::sleep_for(std::chrono::milliseconds(100));
                     auto channel = grpc::CreateChannel(same_host ? "ipv4:127.0.0.1:50051" : "ipv4:10.0.0.1:50051",
                                                        grpc::InsecureChannelCredentials());
                     grpc::GenericStub stub(channel);
                     grpc::ClientContext context;
                     context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
                     const grpc::ByteBuffer request = Buffer("hello");
                     grpc::ByteBuffer response;
                     std::mutex mu;
                     std::condition_variable cv;
                     bool done = false;
                     stub.UnaryCall(&context, "/dsim.Echo/Say", grpc::StubOptions(), &request,
                                    &response, [&](grpc::Status s) {
                                      std::lock_guard<std::mutex> lock(mu);
                                      status = s;
                                      done = true;
                                      cv.notify_one();
                                    });
                     std::unique_lock<std::mutex> lock(mu);
                     cv.wait(lock, [&] { return done; });
                     reply = Text(response);
                   };
  if (same_host) {
    server.Spawn("client", client);
  } else {
    sim.AddHost({.name = "client", .start = client, .start_daemon = false, .addresses = {"10.0.0.2"}});
  }
  const dsim::RunResult result = sim.RunFor(absl::Seconds(30));
  EXPECT_TRUE(result.ok()) << result.ToString();
  for (const auto& escape : dsim::posix::EscapedCalls(sim.scheduler())) {
    ADD_FAILURE() << "escaped: " << escape.ToString();
  }
  EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_EQ(reply, "echo: hello");
  fprintf(stderr, "unary call: status %d '%s' reply '%s' at %s\n", static_cast<int>(status.error_code()),
          status.error_message().c_str(), reply.c_str(), absl::FormatTime(sim.scheduler().Now()).c_str());
}

TEST(PosixGrpc, UnaryCallBetweenTwoHosts) { RunUnaryCall(false); }

// gRPC's runtime is process-wide (one poller, one timer manager); on one host it has one
// descriptor table. Run alone: gRPC initializes once per process.
TEST(PosixGrpc, UnaryCallOnOneHost) { RunUnaryCall(true); }

}  // namespace
