package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type clients struct {
	pub pb.PublisherClient
	sub pb.SubscriberClient
}

func startServer(t *testing.T) clients {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv := NewServer()
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Close()
		g.Stop()
	})
	return clients{pb.NewPublisherClient(conn), pb.NewSubscriberClient(conn)}
}

func mustSetup(t *testing.T, c clients, name string, sub *pb.Subscription) (topic, subName string) {
	t.Helper()
	ctx := context.Background()
	topic = "projects/p/topics/" + name
	if _, err := c.pub.CreateTopic(ctx, &pb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if sub == nil {
		sub = &pb.Subscription{}
	}
	sub.Name = "projects/p/subscriptions/" + name
	sub.Topic = topic
	if _, err := c.sub.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	return topic, sub.Name
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Many publishers, several streams with flow control, acks by RPC and on the stream, some nacks:
// every message is acked exactly once and no stream ever exceeds its flow-control limit.
func TestConcurrentPublishStreamingPullAck(t *testing.T) {
	c := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	topic, subName := mustSetup(t, c, "conc", &pb.Subscription{AckDeadlineSeconds: 30})

	const publishers, perPublisher, streams, maxOut = 4, 2500, 3, 100
	total := publishers * perPublisher

	var mu sync.Mutex
	acked := map[string]int{}
	nacked := map[string]bool{}
	var ackedCount atomic.Int64

	var wg sync.WaitGroup
	for s := 0; s < streams; s++ {
		stream, err := c.sub.StreamingPull(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&pb.StreamingPullRequest{
			Subscription: subName, StreamAckDeadlineSeconds: 30, MaxOutstandingMessages: maxOut,
		}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			var outstanding atomic.Int64
			for {
				res, err := stream.Recv()
				if err != nil {
					return
				}
				if n := outstanding.Add(int64(len(res.ReceivedMessages))); n > maxOut {
					t.Errorf("stream %d: %d outstanding > %d", s, n, maxOut)
				}
				var ackIDs, nackIDs []string
				mu.Lock()
				for _, rm := range res.ReceivedMessages {
					id := rm.Message.MessageId
					if !nacked[id] && len(id)%3 == 0 { // nack about a third once
						nacked[id] = true
						nackIDs = append(nackIDs, rm.AckId)
						continue
					}
					acked[id]++
					ackIDs = append(ackIDs, rm.AckId)
				}
				mu.Unlock()
				outstanding.Add(-int64(len(ackIDs) + len(nackIDs)))
				if len(nackIDs) > 0 {
					if _, err := c.sub.ModifyAckDeadline(ctx, &pb.ModifyAckDeadlineRequest{
						Subscription: subName, AckIds: nackIDs, AckDeadlineSeconds: 0,
					}); err != nil {
						t.Error(err)
					}
				}
				if len(ackIDs) > 0 {
					if s == 0 { // stream 0 acks on the stream, the others by RPC
						err = stream.Send(&pb.StreamingPullRequest{AckIds: ackIDs})
					} else {
						_, err = c.sub.Acknowledge(ctx, &pb.AcknowledgeRequest{Subscription: subName, AckIds: ackIDs})
					}
					if err != nil {
						t.Error(err)
					}
					ackedCount.Add(int64(len(ackIDs)))
				}
			}
		}(s)
	}

	var pubWG sync.WaitGroup
	for p := 0; p < publishers; p++ {
		pubWG.Add(1)
		go func(p int) {
			defer pubWG.Done()
			for i := 0; i < perPublisher; i += 50 {
				msgs := make([]*pb.PubsubMessage, 50)
				for j := range msgs {
					msgs[j] = &pb.PubsubMessage{Data: []byte(fmt.Sprintf("%d-%d", p, i+j)), Attributes: map[string]string{"p": strconv.Itoa(p)}}
				}
				if _, err := c.pub.Publish(ctx, &pb.PublishRequest{Topic: topic, Messages: msgs}); err != nil {
					t.Error(err)
					return
				}
			}
		}(p)
	}
	pubWG.Wait()
	waitFor(t, 30*time.Second, "all messages acked", func() bool { return ackedCount.Load() >= int64(total) })
	// Stream 0's acks travel on the stream: let the server catch up before checking emptiness.
	waitFor(t, 10*time.Second, "subscription drained", func() bool {
		res, err := c.sub.Pull(ctx, &pb.PullRequest{Subscription: subName, MaxMessages: 10, ReturnImmediately: true})
		return err == nil && len(res.ReceivedMessages) == 0
	})
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(acked) != total {
		t.Fatalf("acked %d distinct messages, want %d", len(acked), total)
	}
	for id, n := range acked {
		if n != 1 {
			t.Errorf("message %s acked %d times", id, n)
		}
	}
}

func TestDeadLetterAfterMaxAttempts(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	dlq := "projects/p/topics/dlq"
	if _, err := c.pub.CreateTopic(ctx, &pb.Topic{Name: dlq}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.sub.CreateSubscription(ctx, &pb.Subscription{Name: "projects/p/subscriptions/dlq", Topic: dlq}); err != nil {
		t.Fatal(err)
	}
	topic, subName := mustSetup(t, c, "main", &pb.Subscription{
		DeadLetterPolicy: &pb.DeadLetterPolicy{DeadLetterTopic: dlq, MaxDeliveryAttempts: 5},
	})
	if _, err := c.pub.Publish(ctx, &pb.PublishRequest{Topic: topic, Messages: []*pb.PubsubMessage{
		{Data: []byte("poison"), Attributes: map[string]string{"k": "v"}},
	}}); err != nil {
		t.Fatal(err)
	}
	for attempt := int32(1); attempt <= 5; attempt++ {
		res, err := c.sub.Pull(ctx, &pb.PullRequest{Subscription: subName, MaxMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.ReceivedMessages) != 1 || res.ReceivedMessages[0].DeliveryAttempt != attempt {
			t.Fatalf("attempt %d: got %v", attempt, res.ReceivedMessages)
		}
		if _, err := c.sub.ModifyAckDeadline(ctx, &pb.ModifyAckDeadlineRequest{
			Subscription: subName, AckIds: []string{res.ReceivedMessages[0].AckId},
		}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := c.sub.Pull(ctx, &pb.PullRequest{Subscription: "projects/p/subscriptions/dlq", MaxMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.ReceivedMessages) != 1 {
		t.Fatalf("dead-letter subscription got %d messages", len(res.ReceivedMessages))
	}
	m := res.ReceivedMessages[0].Message
	if string(m.Data) != "poison" || m.Attributes["k"] != "v" ||
		m.Attributes["CloudPubSubDeadLetterSourceDeliveryCount"] != "5" ||
		m.Attributes["CloudPubSubDeadLetterSourceSubscription"] != "main" {
		t.Fatalf("dead letter: %v", m)
	}
	res, err = c.sub.Pull(ctx, &pb.PullRequest{Subscription: subName, ReturnImmediately: true})
	if err != nil || len(res.ReceivedMessages) != 0 {
		t.Fatalf("original subscription not empty: %v %v", res, err)
	}
}

func TestLeaseExpiryRedelivers(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	topic, subName := mustSetup(t, c, "lease", nil)
	if _, err := c.pub.Publish(ctx, &pb.PublishRequest{Topic: topic, Messages: []*pb.PubsubMessage{{Data: []byte("a")}}}); err != nil {
		t.Fatal(err)
	}
	res, err := c.sub.Pull(ctx, &pb.PullRequest{Subscription: subName})
	if err != nil || len(res.ReceivedMessages) != 1 {
		t.Fatalf("pull: %v %v", res, err)
	}
	first := res.ReceivedMessages[0]
	if _, err := c.sub.ModifyAckDeadline(ctx, &pb.ModifyAckDeadlineRequest{
		Subscription: subName, AckIds: []string{first.AckId}, AckDeadlineSeconds: 1,
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, 10*time.Second, "redelivery", func() bool {
		res, err = c.sub.Pull(ctx, &pb.PullRequest{Subscription: subName}) // waits up to 1 s
		if err != nil {
			t.Fatal(err)
		}
		return len(res.ReceivedMessages) == 1
	})
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("redelivered after %v, before the 1 s lease ran out", d)
	}
	second := res.ReceivedMessages[0]
	if second.AckId == first.AckId || second.Message.MessageId != first.Message.MessageId {
		t.Fatalf("first %v second %v", first, second)
	}
	// The stale ack id is ignored; the current one acks.
	for _, id := range []string{first.AckId, second.AckId} {
		if _, err := c.sub.Acknowledge(ctx, &pb.AcknowledgeRequest{Subscription: subName, AckIds: []string{id}}); err != nil {
			t.Fatal(err)
		}
	}
	res, err = c.sub.Pull(ctx, &pb.PullRequest{Subscription: subName, ReturnImmediately: true})
	if err != nil || len(res.ReceivedMessages) != 0 {
		t.Fatalf("not acked: %v %v", res, err)
	}
}

func TestOrderingKeys(t *testing.T) {
	c := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	topic, subName := mustSetup(t, c, "ordered", &pb.Subscription{EnableMessageOrdering: true})
	const perKey = 30
	keys := []string{"a", "b", "c"}
	for i := 0; i < perKey; i++ {
		var msgs []*pb.PubsubMessage
		for _, k := range keys {
			msgs = append(msgs, &pb.PubsubMessage{Data: []byte(strconv.Itoa(i)), OrderingKey: k})
		}
		if _, err := c.pub.Publish(ctx, &pb.PublishRequest{Topic: topic, Messages: msgs}); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := c.sub.StreamingPull(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.StreamingPullRequest{Subscription: subName, StreamAckDeadlineSeconds: 10}); err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	nackedOnce := false
	for received := 0; received < perKey*len(keys); {
		res, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if !res.GetSubscriptionProperties().GetMessageOrderingEnabled() {
			t.Fatal("ordering not reported in subscription properties")
		}
		seen := map[string]bool{}
		var acks []string
		for _, rm := range res.ReceivedMessages {
			k := rm.Message.OrderingKey
			if seen[k] {
				t.Fatalf("two messages of key %s outstanding at once", k)
			}
			seen[k] = true
			if got := string(rm.Message.Data); got != strconv.Itoa(next[k]) {
				t.Fatalf("key %s: got %s, want %d", k, got, next[k])
			}
			if k == "b" && next[k] == 10 && !nackedOnce { // a nack redelivers the same one first
				nackedOnce = true
				if err := stream.Send(&pb.StreamingPullRequest{ModifyDeadlineAckIds: []string{rm.AckId}, ModifyDeadlineSeconds: []int32{0}}); err != nil {
					t.Fatal(err)
				}
				continue
			}
			next[k]++
			received++
			acks = append(acks, rm.AckId)
		}
		if len(acks) > 0 {
			if err := stream.Send(&pb.StreamingPullRequest{AckIds: acks}); err != nil {
				t.Fatal(err)
			}
		}
	}
}
