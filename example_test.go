package pool_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"github.com/pool-go/pool"
)

// Example runs a server and a client in one process: the server accepts
// only the client's key, the client pins the server's key, and a channel
// echoes a message.
func Example() {
	serverID, err := pool.GenerateIdentity()
	if err != nil {
		log.Fatal(err)
	}
	clientID, err := pool.GenerateIdentity()
	if err != nil {
		log.Fatal(err)
	}

	l, err := pool.Listen("127.0.0.1:0", &pool.Config{
		Identity:  serverID,
		Authorize: func(k pool.PublicKey) bool { return k == clientID.Public },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go func() {
		s, err := l.Accept()
		if err != nil {
			return
		}
		ch, err := s.AcceptChannel(context.Background())
		if err != nil {
			return
		}
		io.Copy(ch, ch) // echo until the client's FIN
		ch.CloseWrite()
	}()

	s, err := pool.Dial(context.Background(), l.Addr().String(), serverID.Public,
		&pool.Config{Identity: clientID})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ch, err := s.OpenChannel(0)
	if err != nil {
		log.Fatal(err)
	}
	ch.Write([]byte("hello, pool"))
	ch.CloseWrite()
	reply, err := io.ReadAll(ch)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply))
	fmt.Println("server authenticated:", s.Peer() == serverID.Public)
	// Output:
	// hello, pool
	// server authenticated: true
}
