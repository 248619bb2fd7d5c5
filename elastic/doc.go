// Package elastic is dmlrun's elastic allreduce runtime as a library: peer
// processes find each other by gossip, form a ring, and run collectives on
// it; when a member dies, stalls or is cut off, the survivors that hold a
// majority of the last ring re-form it, bring whoever is behind to the same
// state, and redo the step; new members are let in at a step boundary. There
// is no server of any kind. Nothing here knows about models or files: a
// program hands Run its State and its step function.
//
// A complete program: every process sums its share of 1..n each step, until
// step 100 (go run it four times, each with -join of the first one's gossip
// address; kill one, the others finish with the same total):
//
//	type sum struct{ step, rank, size int; total float64 }
//
//	func (s *sum) Step() int                          { return s.step }
//	func (s *sum) Encode() ([]byte, error)            { return json.Marshal([2]float64{float64(s.step), s.total}) }
//	func (s *sum) Decode(step int, b []byte) error    { var v [2]float64; err := json.Unmarshal(b, &v); s.step, s.total = step, v[1]; return err }
//	func (s *sum) Resize(_ context.Context, c *elastic.Comm) error { s.rank, s.size = c.Rank(), c.Size(); return nil }
//
//	func main() {
//		join := flag.String("join", "", "gossip address of a member")
//		flag.Parse()
//		cfg := elastic.DefaultLocalConfig()
//		cfg.Cluster, cfg.Secret, cfg.Nodes = "sum", []byte("change me"), 4
//		if *join != "" {
//			cfg.Join = []string{*join}
//		}
//		g, err := elastic.Start(context.Background(), cfg)
//		if err != nil {
//			log.Fatal(err)
//		}
//		defer g.Close()
//		fmt.Println("gossip at", g.Addr())
//		s := &sum{}
//		err = g.Run(context.Background(), s, func(ctx context.Context, c *elastic.Comm) error {
//			if s.step == 100 {
//				return elastic.ErrStop
//			}
//			v := []float64{0}
//			for i := s.rank; i < 1000; i += s.size { // this rank's share of the step's work
//				v[0] += float64(i + 1)
//			}
//			if err := c.AllReduce(ctx, ring.Sum, v); err != nil {
//				return err // a RingError: Run re-forms the ring and calls again for this step
//			}
//			s.total += v[0]
//			s.step++
//			return nil
//		})
//		fmt.Println(s.total, err) // 5.005e+07 <nil> on every survivor
//	}
//
// examples/library is a longer one (distributed k-means), with a test that
// kills one of its four processes.
//
// The package has three layers. Core is the protocol's decisions as a pure
// state machine, in the manner of etcd-io/raft's RawNode: membership views,
// collective results and ticks in, actions out (connect to this ring, agree,
// send state, knock, renew, fail), with no I/O and no clock; its tests
// simulate clusters of 3 to 9 nodes under thousands of random schedules of
// kills, stops, partitions, joins, stale views and collectives that complete
// on some members only. Group is the thin driver: gossip (Membership, on
// hashicorp/memberlist), dialing (Comm, over package transport, with the
// collectives of package ring), timers. Comm is a communicator of one ring:
// it is broken after any failure, and its errors are RingErrors.
package elastic
