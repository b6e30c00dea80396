package main

// A load-grade in-memory Pub/Sub server.
//
// Locking: Server.mu guards the topic and subscription maps (and topic.subs); each
// subscription has its own mu guarding its messages, queues, leases and the flow-control
// counters of its streams. No code path holds Server.mu and a subscription's mu at the same
// time, so there is no lock order to get wrong.

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	defaultAckDeadline  = 10 * time.Second
	maxAckDeadlineSecs  = 600
	defaultMaxAttempts  = 5
	maxBatchMessages    = 1000        // messages per StreamingPull response
	maxBatchBytes       = 3 << 20     // bytes per StreamingPull response (clients often cap at 4 MiB)
	maxPullWait         = time.Second // Pull without return_immediately waits at most this long
	deletedTopic        = "_deleted-topic_"
	maxPublishBatchSize = 10 << 20
)

// Server implements the Publisher and Subscriber gRPC services.
type Server struct {
	pb.UnimplementedPublisherServer
	pb.UnimplementedSubscriberServer

	nextID atomic.Uint64

	// Counters for the shutdown log line (how well StreamingPull batches).
	sentResponses, sentMessages atomic.Int64

	mu     sync.RWMutex
	topics map[string]*topic
	subs   map[string]*subscription
}

// NewServer returns an empty server.
func NewServer() *Server {
	return &Server{topics: map[string]*topic{}, subs: map[string]*subscription{}}
}

// Register adds the services to a gRPC server.
func (s *Server) Register(g *grpc.Server) {
	pb.RegisterPublisherServer(g, s)
	pb.RegisterSubscriberServer(g, s)
}

// Stats returns the number of StreamingPull responses and messages sent so far.
func (s *Server) Stats() (responses, messages int64) {
	return s.sentResponses.Load(), s.sentMessages.Load()
}

// Close stops every subscription's lease timer and ends its streams.
func (s *Server) Close() {
	s.mu.Lock()
	subs := make([]*subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.subs = map[string]*subscription{}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.close(status.Error(codes.Unavailable, "server shutting down"))
	}
}

type topic struct {
	proto *pb.Topic
	subs  map[string]*subscription // guarded by Server.mu
}

// ---------------------------------------------------------------- names

func parseName(name, kind string) (project, id string, err error) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "projects" || parts[2] != kind || parts[1] == "" || parts[3] == "" {
		return "", "", status.Errorf(codes.InvalidArgument, "invalid %s name %q (want projects/P/%s/ID)", kind, name, kind)
	}
	return parts[1], parts[3], nil
}

func parseProject(p string) (string, error) {
	parts := strings.Split(p, "/")
	if len(parts) != 2 || parts[0] != "projects" || parts[1] == "" {
		return "", status.Errorf(codes.InvalidArgument, "invalid project %q", p)
	}
	return p + "/", nil
}

// ---------------------------------------------------------------- Publisher

func (s *Server) CreateTopic(_ context.Context, t *pb.Topic) (*pb.Topic, error) {
	if _, _, err := parseName(t.GetName(), "topics"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.topics[t.Name] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "topic %q already exists", t.Name)
	}
	t = proto.Clone(t).(*pb.Topic)
	t.State = pb.Topic_ACTIVE
	s.topics[t.Name] = &topic{proto: t, subs: map[string]*subscription{}}
	return t, nil
}

func (s *Server) GetTopic(_ context.Context, req *pb.GetTopicRequest) (*pb.Topic, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.topics[req.GetTopic()]
	if t == nil {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", req.GetTopic())
	}
	return proto.Clone(t.proto).(*pb.Topic), nil
}

func (s *Server) ListTopics(_ context.Context, req *pb.ListTopicsRequest) (*pb.ListTopicsResponse, error) {
	prefix, err := parseProject(req.GetProject())
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	res := &pb.ListTopicsResponse{}
	for name, t := range s.topics {
		if strings.HasPrefix(name, prefix) {
			res.Topics = append(res.Topics, proto.Clone(t.proto).(*pb.Topic))
		}
	}
	return res, nil
}

func (s *Server) ListTopicSubscriptions(_ context.Context, req *pb.ListTopicSubscriptionsRequest) (*pb.ListTopicSubscriptionsResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.topics[req.GetTopic()]
	if t == nil {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", req.GetTopic())
	}
	res := &pb.ListTopicSubscriptionsResponse{}
	for name := range t.subs {
		res.Subscriptions = append(res.Subscriptions, name)
	}
	return res, nil
}

func (s *Server) DeleteTopic(_ context.Context, req *pb.DeleteTopicRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	t := s.topics[req.GetTopic()]
	if t == nil {
		s.mu.Unlock()
		return nil, status.Errorf(codes.NotFound, "topic %q not found", req.GetTopic())
	}
	delete(s.topics, req.Topic)
	subs := make([]*subscription, 0, len(t.subs))
	for _, sub := range t.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.mu.Lock()
		sub.proto.Topic = deletedTopic
		sub.mu.Unlock()
	}
	return &emptypb.Empty{}, nil
}

func (s *Server) Publish(_ context.Context, req *pb.PublishRequest) (*pb.PublishResponse, error) {
	if len(req.GetMessages()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "no messages")
	}
	size := 0
	for _, m := range req.Messages {
		if len(m.GetData()) == 0 && len(m.GetAttributes()) == 0 {
			return nil, status.Error(codes.InvalidArgument, "some messages contain no data and no attributes")
		}
		size += proto.Size(m)
	}
	if size > maxPublishBatchSize {
		return nil, status.Errorf(codes.InvalidArgument, "request too large (%d bytes)", size)
	}
	ids, err := s.publish(req.GetTopic(), req.Messages, nil)
	if err != nil {
		return nil, err
	}
	return &pb.PublishResponse{MessageIds: ids}, nil
}

// publish stores copies of msgs (with extra attributes, if any) on every subscription that
// exists on the topic now.
func (s *Server) publish(topicName string, msgs []*pb.PubsubMessage, extra map[string]string) ([]string, error) {
	s.mu.RLock()
	t := s.topics[topicName]
	var subs []*subscription
	if t != nil {
		subs = make([]*subscription, 0, len(t.subs))
		for _, sub := range t.subs {
			subs = append(subs, sub)
		}
	}
	s.mu.RUnlock()
	if t == nil {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", topicName)
	}
	now := timestamppb.Now()
	first := s.nextID.Add(uint64(len(msgs))) - uint64(len(msgs)) + 1
	ids := make([]string, len(msgs))
	stored := make([]*topicMessage, len(msgs))
	for i, in := range msgs {
		attrs := in.GetAttributes()
		if len(extra) > 0 {
			attrs = make(map[string]string, len(in.GetAttributes())+len(extra))
			for k, v := range in.GetAttributes() {
				attrs[k] = v
			}
			for k, v := range extra {
				attrs[k] = v
			}
		}
		ids[i] = strconv.FormatUint(first+uint64(i), 10)
		pm := &pb.PubsubMessage{
			Data:        in.GetData(),
			Attributes:  attrs,
			MessageId:   ids[i],
			PublishTime: now,
			OrderingKey: in.GetOrderingKey(),
		}
		stored[i] = &topicMessage{pm: pm, size: proto.Size(pm)}
	}
	for _, sub := range subs {
		sub.add(stored)
	}
	return ids, nil
}

// ---------------------------------------------------------------- subscriptions (admin)

func (s *Server) CreateSubscription(_ context.Context, ps *pb.Subscription) (*pb.Subscription, error) {
	if _, _, err := parseName(ps.GetName(), "subscriptions"); err != nil {
		return nil, err
	}
	if ps.GetEnableExactlyOnceDelivery() {
		return nil, status.Error(codes.Unimplemented, "fastsub: exactly-once delivery is not supported")
	}
	if ps.GetFilter() != "" {
		return nil, status.Error(codes.Unimplemented, "fastsub: subscription filters are not supported")
	}
	if ps.GetPushConfig().GetPushEndpoint() != "" || ps.GetBigqueryConfig() != nil || ps.GetCloudStorageConfig() != nil {
		return nil, status.Error(codes.Unimplemented, "fastsub: only pull subscriptions are supported")
	}
	ps = proto.Clone(ps).(*pb.Subscription)
	if err := normaliseSubscription(ps); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs[ps.Name] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "subscription %q already exists", ps.Name)
	}
	t := s.topics[ps.GetTopic()]
	if t == nil {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", ps.GetTopic())
	}
	if dlp := ps.GetDeadLetterPolicy(); dlp != nil && s.topics[dlp.DeadLetterTopic] == nil {
		return nil, status.Errorf(codes.NotFound, "dead-letter topic %q not found", dlp.DeadLetterTopic)
	}
	ps.State = pb.Subscription_ACTIVE
	sub := newSubscription(s, ps)
	s.subs[ps.Name] = sub
	t.subs[ps.Name] = sub
	return proto.Clone(ps).(*pb.Subscription), nil
}

func normaliseSubscription(ps *pb.Subscription) error {
	switch ads := ps.GetAckDeadlineSeconds(); {
	case ads == 0:
		ps.AckDeadlineSeconds = int32(defaultAckDeadline / time.Second)
	case ads < 10 || ads > maxAckDeadlineSecs:
		return status.Errorf(codes.InvalidArgument, "ack_deadline_seconds must be in [10, 600], got %d", ads)
	}
	if dlp := ps.GetDeadLetterPolicy(); dlp != nil {
		if dlp.DeadLetterTopic == "" {
			ps.DeadLetterPolicy = nil
		} else {
			if dlp.MaxDeliveryAttempts == 0 {
				dlp.MaxDeliveryAttempts = defaultMaxAttempts
			}
			if dlp.MaxDeliveryAttempts < 5 || dlp.MaxDeliveryAttempts > 100 {
				return status.Errorf(codes.InvalidArgument, "max_delivery_attempts must be in [5, 100], got %d", dlp.MaxDeliveryAttempts)
			}
		}
	}
	return nil
}

func (s *Server) findSub(name string) (*subscription, error) {
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "missing subscription")
	}
	s.mu.RLock()
	sub := s.subs[name]
	s.mu.RUnlock()
	if sub == nil {
		return nil, status.Errorf(codes.NotFound, "subscription %q not found", name)
	}
	return sub, nil
}

func (s *Server) GetSubscription(_ context.Context, req *pb.GetSubscriptionRequest) (*pb.Subscription, error) {
	sub, err := s.findSub(req.GetSubscription())
	if err != nil {
		return nil, err
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return proto.Clone(sub.proto).(*pb.Subscription), nil
}

func (s *Server) UpdateSubscription(_ context.Context, req *pb.UpdateSubscriptionRequest) (*pb.Subscription, error) {
	sub, err := s.findSub(req.GetSubscription().GetName())
	if err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, status.Error(codes.InvalidArgument, "empty update_mask")
	}
	sub.mu.Lock()
	next := proto.Clone(sub.proto).(*pb.Subscription)
	sub.mu.Unlock()
	in := req.GetSubscription()
	for _, p := range paths {
		switch p {
		case "ack_deadline_seconds":
			next.AckDeadlineSeconds = in.GetAckDeadlineSeconds()
		case "dead_letter_policy":
			next.DeadLetterPolicy = in.GetDeadLetterPolicy()
		case "labels":
			next.Labels = in.GetLabels()
		case "retry_policy":
			next.RetryPolicy = in.GetRetryPolicy()
		case "message_retention_duration":
			next.MessageRetentionDuration = in.GetMessageRetentionDuration()
		default:
			return nil, status.Errorf(codes.Unimplemented, "fastsub: cannot update %q", p)
		}
	}
	if err := normaliseSubscription(next); err != nil {
		return nil, err
	}
	if dlp := next.GetDeadLetterPolicy(); dlp != nil {
		s.mu.RLock()
		ok := s.topics[dlp.DeadLetterTopic] != nil
		s.mu.RUnlock()
		if !ok {
			return nil, status.Errorf(codes.NotFound, "dead-letter topic %q not found", dlp.DeadLetterTopic)
		}
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	next.Topic = sub.proto.Topic
	sub.proto = next
	sub.ackDeadline = time.Duration(next.AckDeadlineSeconds) * time.Second
	return proto.Clone(next).(*pb.Subscription), nil
}

func (s *Server) ListSubscriptions(_ context.Context, req *pb.ListSubscriptionsRequest) (*pb.ListSubscriptionsResponse, error) {
	prefix, err := parseProject(req.GetProject())
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	subs := make([]*subscription, 0, len(s.subs))
	for name, sub := range s.subs {
		if strings.HasPrefix(name, prefix) {
			subs = append(subs, sub)
		}
	}
	s.mu.RUnlock()
	res := &pb.ListSubscriptionsResponse{}
	for _, sub := range subs {
		sub.mu.Lock()
		res.Subscriptions = append(res.Subscriptions, proto.Clone(sub.proto).(*pb.Subscription))
		sub.mu.Unlock()
	}
	return res, nil
}

func (s *Server) DeleteSubscription(_ context.Context, req *pb.DeleteSubscriptionRequest) (*emptypb.Empty, error) {
	name := req.GetSubscription()
	s.mu.Lock()
	sub := s.subs[name]
	if sub == nil {
		s.mu.Unlock()
		return nil, status.Errorf(codes.NotFound, "subscription %q not found", name)
	}
	delete(s.subs, name)
	for _, t := range s.topics {
		delete(t.subs, name)
	}
	s.mu.Unlock()
	sub.close(status.Errorf(codes.NotFound, "subscription %q deleted", name))
	return &emptypb.Empty{}, nil
}

// ---------------------------------------------------------------- Subscriber (data)

func (s *Server) Acknowledge(_ context.Context, req *pb.AcknowledgeRequest) (*emptypb.Empty, error) {
	sub, err := s.findSub(req.GetSubscription())
	if err != nil {
		return nil, err
	}
	sub.ack(req.GetAckIds())
	return &emptypb.Empty{}, nil
}

func (s *Server) ModifyAckDeadline(_ context.Context, req *pb.ModifyAckDeadlineRequest) (*emptypb.Empty, error) {
	sub, err := s.findSub(req.GetSubscription())
	if err != nil {
		return nil, err
	}
	secs := req.GetAckDeadlineSeconds()
	if secs < 0 || secs > maxAckDeadlineSecs {
		return nil, status.Errorf(codes.InvalidArgument, "ack_deadline_seconds must be in [0, 600], got %d", secs)
	}
	s.forwardDeadLetters(sub, sub.modack(req.GetAckIds(), secs))
	return &emptypb.Empty{}, nil
}

func (s *Server) Pull(ctx context.Context, req *pb.PullRequest) (*pb.PullResponse, error) {
	sub, err := s.findSub(req.GetSubscription())
	if err != nil {
		return nil, err
	}
	limit := int(req.GetMaxMessages())
	if limit < 0 {
		return nil, status.Error(codes.InvalidArgument, "max_messages cannot be negative")
	}
	if limit == 0 {
		limit = maxBatchMessages
	}
	var wait <-chan time.Time
	if !req.GetReturnImmediately() {
		// Answer (empty) before the caller's deadline rather than fail it with DEADLINE_EXCEEDED.
		waitFor := maxPullWait
		if dl, ok := ctx.Deadline(); ok {
			waitFor = min(waitFor, time.Until(dl)-50*time.Millisecond)
		}
		t := time.NewTimer(max(waitFor, 0))
		defer t.Stop()
		wait = t.C
	}
	for {
		sub.mu.Lock()
		if sub.closed != nil {
			err := sub.closed
			sub.mu.Unlock()
			return nil, err
		}
		msgs := sub.takeLocked(nil, limit, time.Now())
		notify := sub.notify
		sub.mu.Unlock()
		if len(msgs) > 0 || wait == nil {
			return &pb.PullResponse{ReceivedMessages: msgs}, nil
		}
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-wait:
			return &pb.PullResponse{}, nil
		case <-notify:
		}
	}
}

func (s *Server) StreamingPull(gs pb.Subscriber_StreamingPullServer) error {
	req, err := gs.Recv()
	if err != nil {
		return err
	}
	sub, err := s.findSub(req.GetSubscription())
	if err != nil {
		return err
	}
	if d := req.GetStreamAckDeadlineSeconds(); d < 0 || d > maxAckDeadlineSecs {
		return status.Errorf(codes.InvalidArgument, "stream_ack_deadline_seconds must be in [10, 600], got %d", d)
	}
	if len(req.GetModifyDeadlineAckIds()) != len(req.GetModifyDeadlineSeconds()) {
		return status.Error(codes.InvalidArgument, "modify_deadline_ack_ids and modify_deadline_seconds differ in length")
	}
	st := &stream{
		maxMsgs:   req.GetMaxOutstandingMessages(),
		maxBytes:  req.GetMaxOutstandingBytes(),
		heartbeat: req.GetProtocolVersion() >= 1,
		pingc:     make(chan struct{}, 1),
	}
	ctx, cancel := context.WithCancelCause(gs.Context())
	defer cancel(nil)

	sub.mu.Lock()
	if sub.closed != nil {
		err := sub.closed
		sub.mu.Unlock()
		return err
	}
	st.ackDeadline = sub.ackDeadline
	if d := req.GetStreamAckDeadlineSeconds(); d > 0 {
		st.ackDeadline = time.Duration(d) * time.Second
	}
	sub.streams[st] = cancel
	sub.mu.Unlock()
	defer sub.removeStream(st)

	s.handleStreamRequest(sub, st, req)

	go func() {
		for {
			req, err := gs.Recv()
			if err != nil {
				cancel(err) // io.EOF when the client half-closes
				return
			}
			s.handleStreamRequest(sub, st, req)
		}
	}()

	props := &pb.StreamingPullResponse_SubscriptionProperties{
		MessageOrderingEnabled: sub.ordered,
	}
	for {
		sub.mu.Lock()
		msgs := sub.takeLocked(st, maxBatchMessages, time.Now())
		notify := sub.notify
		sub.mu.Unlock()
		if len(msgs) > 0 {
			if err := gs.Send(&pb.StreamingPullResponse{ReceivedMessages: msgs, SubscriptionProperties: props}); err != nil {
				return err
			}
			s.sentResponses.Add(1)
			s.sentMessages.Add(int64(len(msgs)))
			continue
		}
		select {
		case <-ctx.Done():
			cause := context.Cause(ctx)
			if errors.Is(cause, io.EOF) {
				return nil
			}
			if _, ok := status.FromError(cause); ok {
				return cause
			}
			return status.FromContextError(cause).Err()
		case <-st.pingc:
			if err := gs.Send(&pb.StreamingPullResponse{SubscriptionProperties: props}); err != nil {
				return err
			}
		case <-notify:
		}
	}
}

func (s *Server) handleStreamRequest(sub *subscription, st *stream, req *pb.StreamingPullRequest) {
	if len(req.GetAckIds()) == 0 && len(req.GetModifyDeadlineAckIds()) == 0 {
		if st.heartbeat {
			select {
			case st.pingc <- struct{}{}:
			default:
			}
		}
	}
	if len(req.GetAckIds()) > 0 {
		sub.ack(req.GetAckIds())
	}
	ids, secs := req.GetModifyDeadlineAckIds(), req.GetModifyDeadlineSeconds()
	for i := 0; i < len(ids) && i < len(secs); i++ {
		s.forwardDeadLetters(sub, sub.modack(ids[i:i+1], secs[i]))
	}
	if d := req.GetStreamAckDeadlineSeconds(); d > 0 && d <= maxAckDeadlineSecs {
		sub.mu.Lock()
		st.ackDeadline = time.Duration(d) * time.Second
		sub.mu.Unlock()
	}
}

// forwardDeadLetters publishes messages that ran out of delivery attempts to the dead-letter
// topic, with the attributes the real service adds. Messages whose dead-letter topic is gone
// are made available on the subscription again.
func (s *Server) forwardDeadLetters(sub *subscription, dead []*subMessage) {
	if len(dead) == 0 {
		return
	}
	sub.mu.Lock()
	dlp := sub.proto.GetDeadLetterPolicy()
	name := sub.proto.Name
	sub.mu.Unlock()
	project, subID, _ := parseName(name, "subscriptions")
	for _, m := range dead {
		extra := map[string]string{
			"CloudPubSubDeadLetterSourceDeliveryCount":       strconv.Itoa(int(m.deliveries)),
			"CloudPubSubDeadLetterSourceSubscription":        subID,
			"CloudPubSubDeadLetterSourceSubscriptionProject": project,
			"CloudPubSubDeadLetterSourceTopicPublishTime":    m.pm.GetPublishTime().AsTime().UTC().Format(time.RFC3339Nano),
		}
		var err error
		if dlp != nil {
			_, err = s.publish(dlp.DeadLetterTopic, []*pb.PubsubMessage{m.pm}, extra)
		}
		if dlp == nil || err != nil {
			sub.requeue(m)
		}
	}
}

// ---------------------------------------------------------------- subscription state

type topicMessage struct {
	pm   *pb.PubsubMessage // shared by all subscriptions; never modified after publish
	size int
}

type msgState uint8

const (
	stAvailable   msgState = iota // in the ready queue
	stOutstanding                 // leased to a client
	stHeld                        // waiting behind an earlier message with the same ordering key
	stGone                        // acked, dead-lettered or the subscription was deleted
)

type subMessage struct {
	*topicMessage
	state      msgState
	deliveries int32 // delivery attempts so far
	deadline   time.Time
	leaseGen   uint64  // bumps on every lease change, invalidating older heap entries
	owner      *stream // stream the current lease counts against (nil for Pull)
}

type stream struct {
	// All fields below are guarded by the subscription's mu, except pingc and heartbeat.
	maxMsgs, maxBytes int64
	outMsgs, outBytes int64
	ackDeadline       time.Duration
	heartbeat         bool
	pingc             chan struct{}
}

type lease struct {
	deadline time.Time
	m        *subMessage
	gen      uint64
}

type leaseHeap []lease

func (h leaseHeap) Len() int           { return len(h) }
func (h leaseHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h leaseHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *leaseHeap) Push(x any)        { *h = append(*h, x.(lease)) }
func (h *leaseHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type subscription struct {
	srv     *Server
	ordered bool // fixed at creation

	mu          sync.Mutex
	proto       *pb.Subscription
	ackDeadline time.Duration
	msgs        map[string]*subMessage // unacked messages by message id
	ready       []*subMessage          // FIFO; entries whose state is no longer stAvailable are skipped
	readyHead   int
	leases      leaseHeap
	keys        map[string][]*subMessage // ordering key -> held messages (when ordered)
	busyKeys    map[string]bool          // ordering key -> a message is available or outstanding
	streams     map[*stream]context.CancelCauseFunc
	notify      chan struct{} // closed (and replaced) when messages or stream capacity free up
	closed      error         // set when the subscription is deleted
	wake        chan struct{} // nudges the lease goroutine
	done        chan struct{}
}

func newSubscription(srv *Server, ps *pb.Subscription) *subscription {
	sub := &subscription{
		srv:         srv,
		ordered:     ps.GetEnableMessageOrdering(),
		proto:       ps,
		ackDeadline: time.Duration(ps.AckDeadlineSeconds) * time.Second,
		msgs:        map[string]*subMessage{},
		keys:        map[string][]*subMessage{},
		busyKeys:    map[string]bool{},
		streams:     map[*stream]context.CancelCauseFunc{},
		notify:      make(chan struct{}),
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	go sub.leaseLoop()
	return sub
}

// signalLocked wakes every sender waiting for messages or capacity.
func (sub *subscription) signalLocked() {
	close(sub.notify)
	sub.notify = make(chan struct{})
}

func (sub *subscription) close(err error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed != nil {
		return
	}
	sub.closed = err
	for _, cancel := range sub.streams {
		cancel(err)
	}
	for _, m := range sub.msgs {
		m.state = stGone
	}
	sub.msgs = map[string]*subMessage{}
	sub.ready, sub.readyHead, sub.leases = nil, 0, nil
	close(sub.done)
	sub.signalLocked()
}

func (sub *subscription) removeStream(st *stream) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	delete(sub.streams, st)
	// Leases taken on this stream stay valid until they expire (as in Pub/Sub); they just
	// no longer count against a stream's flow control.
	for _, m := range sub.msgs {
		if m.owner == st {
			m.owner = nil
		}
	}
}

func (sub *subscription) add(msgs []*topicMessage) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed != nil {
		return
	}
	for _, tm := range msgs {
		m := &subMessage{topicMessage: tm}
		sub.msgs[tm.pm.MessageId] = m
		if key := tm.pm.GetOrderingKey(); sub.ordered && key != "" {
			if sub.busyKeys[key] {
				m.state = stHeld
				sub.keys[key] = append(sub.keys[key], m)
				continue
			}
			sub.busyKeys[key] = true
		}
		m.state = stAvailable
		sub.ready = append(sub.ready, m)
	}
	sub.signalLocked()
}

// takeLocked leases up to max available messages, to st (honouring its flow control) or, when
// st is nil, to a Pull caller.
func (sub *subscription) takeLocked(st *stream, limit int, now time.Time) []*pb.ReceivedMessage {
	if sub.closed != nil {
		return nil
	}
	deadline := sub.ackDeadline
	if st != nil {
		deadline = st.ackDeadline
	}
	dlp := sub.proto.GetDeadLetterPolicy() != nil
	var out []*pb.ReceivedMessage
	batchBytes := 0
	for len(out) < limit && sub.readyHead < len(sub.ready) {
		m := sub.ready[sub.readyHead]
		if m.state != stAvailable {
			sub.popReadyLocked()
			continue
		}
		if st != nil {
			if st.maxMsgs > 0 && st.outMsgs >= st.maxMsgs {
				break
			}
			if st.maxBytes > 0 && st.outMsgs > 0 && st.outBytes+int64(m.size) > st.maxBytes {
				break
			}
		}
		if len(out) > 0 && batchBytes+m.size > maxBatchBytes {
			break
		}
		sub.popReadyLocked()
		m.state = stOutstanding
		m.deliveries++
		m.owner = st
		if st != nil {
			st.outMsgs++
			st.outBytes += int64(m.size)
		}
		sub.setLeaseLocked(m, now.Add(deadline))
		rm := &pb.ReceivedMessage{
			AckId:   m.pm.MessageId + ":" + strconv.Itoa(int(m.deliveries)),
			Message: m.pm,
		}
		if dlp {
			rm.DeliveryAttempt = m.deliveries
		}
		out = append(out, rm)
		batchBytes += m.size
	}
	return out
}

func (sub *subscription) popReadyLocked() {
	sub.ready[sub.readyHead] = nil
	sub.readyHead++
	if sub.readyHead == len(sub.ready) {
		sub.ready, sub.readyHead = sub.ready[:0], 0
	} else if sub.readyHead > 1024 && sub.readyHead*2 > len(sub.ready) {
		n := copy(sub.ready, sub.ready[sub.readyHead:])
		clear(sub.ready[n:])
		sub.ready, sub.readyHead = sub.ready[:n], 0
	}
}

func (sub *subscription) setLeaseLocked(m *subMessage, deadline time.Time) {
	m.leaseGen++
	m.deadline = deadline
	wasEarliest := len(sub.leases) == 0 || deadline.Before(sub.leases[0].deadline)
	heap.Push(&sub.leases, lease{deadline: deadline, m: m, gen: m.leaseGen})
	if len(sub.leases) > 4096 && len(sub.leases) > 4*len(sub.msgs) {
		sub.compactLeasesLocked()
	}
	if wasEarliest {
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
}

func (sub *subscription) compactLeasesLocked() {
	live := sub.leases[:0]
	for _, l := range sub.leases {
		if l.m.state == stOutstanding && l.gen == l.m.leaseGen {
			live = append(live, l)
		}
	}
	clear(sub.leases[len(live):])
	sub.leases = live
	heap.Init(&sub.leases)
}

// releaseLocked ends the current lease of m (ack, nack or expiry).
func (sub *subscription) releaseLocked(m *subMessage) {
	m.leaseGen++
	m.deadline = time.Time{}
	if st := m.owner; st != nil {
		st.outMsgs--
		st.outBytes -= int64(m.size)
		m.owner = nil
	}
}

// lookupLocked resolves an ack id to a message of this subscription, if it is for the
// message's latest delivery.
func (sub *subscription) lookupLocked(ackID string) *subMessage {
	i := strings.LastIndexByte(ackID, ':')
	if i < 0 {
		return nil
	}
	m := sub.msgs[ackID[:i]]
	if m == nil {
		return nil
	}
	n, err := strconv.Atoi(ackID[i+1:])
	if err != nil || int32(n) != m.deliveries {
		return nil
	}
	return m
}

func (sub *subscription) ack(ackIDs []string) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	changed := false
	for _, id := range ackIDs {
		m := sub.lookupLocked(id)
		// An ack that arrives after the lease expired still counts while the message has not
		// been handed out again (Pub/Sub acks late acks on a best-effort basis too).
		if m == nil || (m.state != stOutstanding && m.state != stAvailable) {
			continue
		}
		sub.releaseLocked(m)
		m.state = stGone
		delete(sub.msgs, m.pm.MessageId)
		sub.releaseKeyLocked(m)
		changed = true
	}
	if changed {
		sub.signalLocked()
	}
}

// releaseKeyLocked lets the next message with m's ordering key through.
func (sub *subscription) releaseKeyLocked(m *subMessage) {
	key := m.pm.GetOrderingKey()
	if !sub.ordered || key == "" {
		return
	}
	held := sub.keys[key]
	if len(held) == 0 {
		delete(sub.busyKeys, key)
		delete(sub.keys, key)
		return
	}
	next := held[0]
	held[0] = nil
	if len(held) == 1 {
		delete(sub.keys, key)
	} else {
		sub.keys[key] = held[1:]
	}
	next.state = stAvailable
	sub.ready = append(sub.ready, next)
}

// modack changes the deadline of outstanding messages; 0 is a nack. It returns the messages
// that must now go to the dead-letter topic (already removed from the subscription).
func (sub *subscription) modack(ackIDs []string, secs int32) []*subMessage {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	now := time.Now()
	var dead []*subMessage
	changed := false
	for _, id := range ackIDs {
		m := sub.lookupLocked(id)
		if m == nil || m.state != stOutstanding {
			continue
		}
		if secs > 0 {
			sub.setLeaseLocked(m, now.Add(time.Duration(secs)*time.Second))
			continue
		}
		changed = true
		if sub.expireLocked(m) {
			dead = append(dead, m)
		}
	}
	if changed {
		sub.signalLocked()
	}
	return dead
}

// expireLocked ends m's lease (nack or deadline). It returns true when m has used up its
// delivery attempts: it is then removed and must be forwarded to the dead-letter topic.
func (sub *subscription) expireLocked(m *subMessage) bool {
	sub.releaseLocked(m)
	if dlp := sub.proto.GetDeadLetterPolicy(); dlp != nil && m.deliveries >= dlp.MaxDeliveryAttempts {
		m.state = stGone
		delete(sub.msgs, m.pm.MessageId)
		sub.releaseKeyLocked(m)
		return true
	}
	m.state = stAvailable
	sub.ready = append(sub.ready, m)
	return false
}

// requeue makes a message available again when dead-lettering it failed.
func (sub *subscription) requeue(m *subMessage) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed != nil {
		return
	}
	m.state = stAvailable
	sub.msgs[m.pm.MessageId] = m
	// Its ordering key was already released when it expired: with ordering keys, a message
	// whose dead-letter topic has vanished may now be redelivered after its successor.
	sub.ready = append(sub.ready, m)
	sub.signalLocked()
}

// leaseLoop makes messages whose lease expired available again.
func (sub *subscription) leaseLoop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		sub.mu.Lock()
		now := time.Now()
		var dead []*subMessage
		expired := false
		for len(sub.leases) > 0 && !sub.leases[0].deadline.After(now) {
			l := heap.Pop(&sub.leases).(lease)
			if l.m.state != stOutstanding || l.gen != l.m.leaseGen {
				continue
			}
			expired = true
			if sub.expireLocked(l.m) {
				dead = append(dead, l.m)
			}
		}
		if expired {
			sub.signalLocked()
		}
		next := time.Hour
		if len(sub.leases) > 0 {
			next = time.Until(sub.leases[0].deadline)
		}
		sub.mu.Unlock()
		sub.srv.forwardDeadLetters(sub, dead)

		timer.Reset(max(next, time.Millisecond))
		select {
		case <-sub.done:
			return
		case <-sub.wake:
		case <-timer.C:
		}
	}
}

// String is for debugging.
func (sub *subscription) String() string { return fmt.Sprintf("subscription(%s)", sub.proto.Name) }
