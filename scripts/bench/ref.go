package main

// The minimal reference pipeline of the performance issue, for comparison in
// the same run: each agency streams its CSV over loopback TCP in frames of at
// most 8 kB cut at line ends; the central commits each frame in one fsync'd
// bbolt transaction (one key per bet) and acks one byte; once every agency has
// sent an empty frame, one bucket scan counts the 7574s per agency and each
// agency gets its count. No validation, no resume, no logging.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	bolt "go.etcd.io/bbolt"
)

const refFrame = 8 << 10

func refServer(args []string) error {
	fs := flag.NewFlagSet("ref-server", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	dbPath := fs.String("db", "ref.db", "bbolt file")
	n := fs.Int("agencies", 5, "agencies to wait for")
	fs.Parse(args)
	db, err := bolt.Open(*dbPath, 0o600, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("bets")); return err }); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", ln.Addr())
	var (
		mu      sync.Mutex
		done    int
		drawn   = make(chan struct{})
		winners map[uint32]uint32
	)
	var wg sync.WaitGroup
	for i := 0; i < *n; i++ {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			r := bufio.NewReaderSize(conn, refFrame+8)
			var hdr [4]byte
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				return
			}
			agency := binary.BigEndian.Uint32(hdr[:])
			prefix := fmt.Appendf(nil, "%d,", agency)
			buf := make([]byte, refFrame)
			for {
				if _, err := io.ReadFull(r, hdr[:]); err != nil {
					return
				}
				size := binary.BigEndian.Uint32(hdr[:])
				if size == 0 {
					break
				}
				if size > refFrame {
					return
				}
				body := buf[:size]
				if _, err := io.ReadFull(r, body); err != nil {
					return
				}
				err := db.Update(func(tx *bolt.Tx) error {
					b := tx.Bucket([]byte("bets"))
					for _, line := range bytes.Split(bytes.TrimRight(body, "\r\n"), []byte("\n")) {
						seq, _ := b.NextSequence()
						key := binary.BigEndian.AppendUint64(nil, seq)
						val := append(append([]byte{}, prefix...), bytes.TrimRight(line, "\r")...)
						if err := b.Put(key, val); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					return
				}
				conn.Write([]byte{1})
			}
			mu.Lock()
			done++
			if done == *n {
				winners = refDraw(db)
				close(drawn)
			}
			mu.Unlock()
			<-drawn
			binary.BigEndian.PutUint32(hdr[:], winners[agency])
			conn.Write(hdr[:])
		}()
	}
	wg.Wait()
	return nil
}

// refDraw scans every stored bet once and counts the 7574s per agency.
func refDraw(db *bolt.DB) map[uint32]uint32 {
	out := map[uint32]uint32{}
	db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("bets")).ForEach(func(_, v []byte) error {
			if bytes.HasSuffix(v, []byte(",7574")) {
				var a uint32
				fmt.Sscanf(string(v[:bytes.IndexByte(v, ',')]), "%d", &a)
				out[a]++
			}
			return nil
		})
	})
	return out
}

func refAgency(args []string) error {
	fs := flag.NewFlagSet("ref-agency", flag.ExitOnError)
	addr := fs.String("addr", "", "central address")
	id := fs.Int("id", 1, "agency id")
	path := fs.String("data", "", "CSV file")
	fs.Parse(args)
	f, err := os.Open(*path)
	if err != nil {
		return err
	}
	defer f.Close()
	conn, err := net.Dial("tcp", *addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(*id))
	conn.Write(hdr[:])
	r := bufio.NewReaderSize(f, 1<<16)
	frame := make([]byte, 4, refFrame+4)
	ack := make([]byte, 1)
	send := func() error {
		binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
		if _, err := conn.Write(frame); err != nil {
			return err
		}
		frame = frame[:4]
		_, err := io.ReadFull(conn, ack)
		return err
	}
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			if len(frame)-4+len(line) > refFrame {
				if err := send(); err != nil {
					return err
				}
			}
			frame = append(frame, line...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if len(frame) > 4 {
		if err := send(); err != nil {
			return err
		}
	}
	binary.BigEndian.PutUint32(hdr[:], 0)
	conn.Write(hdr[:])
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return err
	}
	fmt.Printf("winners %d\n", binary.BigEndian.Uint32(hdr[:]))
	return nil
}
