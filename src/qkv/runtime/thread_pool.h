// ThreadPool: the team of worker threads qkv runs on. qkv threads with OpenMP (GNU libgomp),
// because oneDNN, our GEMM library, is built on the same runtime: one team serves both, and a
// GEMM called inside a ParallelFor runs on its calling thread instead of oversubscribing.
//
// This class is the only code that configures OpenMP. It is created once, by the program
// (the command line or a test), and reaches every op through ExecutionContext.
#pragma once

namespace qkv {

class ThreadPool {
 public:
  // num_threads >= 1. Throws qkv::Error otherwise.
  explicit ThreadPool(int num_threads);

  int num_threads() const { return num_threads_; }

  // The number of hardware threads this process may run on (its CPU affinity mask).
  static int HardwareThreads();

 private:
  int num_threads_;
};

}  // namespace qkv
