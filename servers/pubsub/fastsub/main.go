// Command fastsub is a load-grade in-memory Pub/Sub emulator for tests.
//
// Google's pstest hands out one message per StreamingPull response on a 10 ms tick (about
// 95 messages/s per stream), which hides every throughput problem of a subscriber. fastsub
// implements the same data-plane semantics (leases, ack/nack, lease extension, expiry and
// redelivery, dead-letter policy with delivery attempts, ordering keys) but answers
// StreamingPull with batches limited only by the client's flow control, so a test can find
// the subscriber's own ceiling.
//
// Usage: fastsub -addr 127.0.0.1:0
//
// The first line on stdout is "listening HOST:PORT". The server runs until SIGINT/SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8085", "host:port to listen on (port 0 picks a free port)")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("fastsub: ")

	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("cannot listen on %s: %v", *addr, err)
	}
	g := grpc.NewServer(grpc.MaxRecvMsgSize(20 << 20))
	srv := NewServer()
	srv.Register(g)
	fmt.Printf("listening %s\n", lis.Addr())
	_ = os.Stdout.Sync()

	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	select {
	case sig := <-sigc:
		log.Printf("received %v, shutting down", sig)
	case err := <-errc:
		log.Fatalf("serve: %v", err)
	}
	if r, m := srv.Stats(); r > 0 {
		log.Printf("streaming pull: %d messages in %d responses (%.1f per response)", m, r, float64(m)/float64(r))
	}
	srv.Close() // ends open StreamingPull calls so GracefulStop does not wait on them
	done := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		g.Stop()
	}
}
