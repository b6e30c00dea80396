// Command pstestserver runs Google's fake Pub/Sub server (pstest) as a standalone
// process, so the Python test-suite can reach it through PUBSUB_EMULATOR_HOST.
//
// Usage: pstestserver -addr 127.0.0.1:0
//
// The first line on stdout is "listening HOST:PORT" (the bound address, useful
// with port 0). The server runs until SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8085", "host:port to listen on (port 0 picks a free port)")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("pstestserver: ")

	// NewServerWithAddress panics if it cannot listen; turn that into a clean exit code.
	var srv *pstest.Server
	func() {
		defer func() {
			if r := recover(); r != nil {
				log.Fatalf("cannot start on %s: %v", *addr, r)
			}
		}()
		srv = pstest.NewServerWithAddress(*addr)
	}()
	fmt.Printf("listening %s\n", srv.Addr)
	_ = os.Stdout.Sync()

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	sig := <-sigc
	log.Printf("received %v, shutting down", sig)

	done := make(chan struct{})
	go func() {
		_ = srv.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		log.Printf("close timed out; exiting anyway")
	}
}
