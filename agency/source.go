package agency

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
)

// Bets says where an agency's bets come from: its CSV file, or the one bet
// of the environment (course exercise 5).
type Bets interface {
	// Mode is what the agency announces in its hello.
	Mode() protocol.Mode
	// Name names the input in logs and errors.
	Name() string
	// Open starts a pass over the valid bets, validated as of today.
	Open(today time.Time) (Source, error)
	// Acked tells the user that the central stored the n bets from first;
	// acked bets are stored in all, and they reach fraction of the input
	// (Source.Progress when the batch's last bet was read).
	Acked(first uint64, n int, acked uint64, fraction float64)
}

// csvBets are the bets of an agency's CSV file.
type csvBets struct {
	path       string
	agency     int
	log        logformat.Logger
	loggedUpTo int        // invalid rows up to this line were logged by an earlier pass
	last       *csvSource // the latest pass
	step       int        // last 10% step of progress logged
	progress   func(stored uint64, fraction float64)
}

func (b *csvBets) Mode() protocol.Mode { return protocol.ModeCSV }
func (b *csvBets) Name() string        { return b.path }

func (b *csvBets) Open(today time.Time) (Source, error) {
	if b.last != nil {
		b.loggedUpTo = max(b.loggedUpTo, b.last.LastLine())
	}
	src, err := openCSV(b.path, b.agency, b.log, b.loggedUpTo, today)
	if err != nil {
		return nil, err
	}
	b.last = src
	return src, nil
}

// Acked logs about every 10% of the file stored, and reports each batch to
// the progress callback.
func (b *csvBets) Acked(_ uint64, _ int, acked uint64, fraction float64) {
	if b.progress != nil {
		b.progress(acked, fraction)
	}
	if step := int(fraction * 10); step > b.step {
		b.step = step
		b.log.Infof("action: progreso | result: in_progress | enviadas: %d | porcentaje: %d", acked, min(step*10, 100))
	}
}

// singleBet is the one bet of course exercise 5, given by the environment.
type singleBet struct {
	bet lottery.Bet
	log logformat.Logger
}

func (b *singleBet) Mode() protocol.Mode { return protocol.ModeSingle }
func (b *singleBet) Name() string        { return "env" }

// Open validates the bet as of the round's day, as the CSV path and the
// central do (the config-time check used the machine's day).
func (b *singleBet) Open(today time.Time) (Source, error) {
	if err := b.bet.ValidateAt(today); err != nil {
		return nil, fmt.Errorf("single-bet mode, as of the round's day %s: %w", today.Format(time.DateOnly), err)
	}
	return &singleSource{bet: b.bet}, nil
}

// Acked logs the bet, as the exercise asks.
func (b *singleBet) Acked(uint64, int, uint64, float64) {
	b.log.Infof("action: apuesta_enviada | result: success | dni: %s | numero: %d", logformat.Value(b.bet.Document), b.bet.Number)
}

// Source yields an agency's valid bets in order; Next returns io.EOF at the end.
type Source interface {
	Next() (lottery.Bet, error)
	// Progress is the fraction of the input read so far, 0..1.
	Progress() float64
	// Discarded is how many invalid or unreadable rows were skipped so far.
	Discarded() int
	// Err is why the input could not be read whole (a CSV syntax error
	// swallowed rows), or nil. Bets read before and after it are sent, but
	// the agency does not finish with rows it could not read.
	Err() error
	Close() error
}

// RowError says which row of which file is invalid, in which field and why.
type RowError struct {
	File  string
	Line  int
	Field string
	Err   error
}

func (e *RowError) Error() string {
	return fmt.Sprintf("%s:%d: field %s: %v", e.File, e.Line, e.Field, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// csvSource streams an agency file: first name, last name, document,
// birthdate (YYYY-MM-DD), number; no header; CRLF or LF line ends. Invalid
// rows are logged with their line and field, counted and skipped.
type csvSource struct {
	path       string
	agency     int
	f          *os.File
	size       int64
	bom        int64 // bytes of a byte order mark skipped
	cr         *csv.Reader
	log        logformat.Logger
	loggedUpTo int // invalid rows up to this line were logged by an earlier pass
	lastLine   int // the line of the last row read
	discarded  int
	unreadable *RowError // the first CSV syntax error
	lost       int       // rows lost to CSV syntax errors
	today      time.Time
}

// openCSV opens path for agency, validating bets as of today. Invalid rows
// up to line loggedUpTo are not logged again (they were, before a reconnect).
func openCSV(path string, agency int, log logformat.Logger, loggedUpTo int, today time.Time) (*csvSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open agency data: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open agency data: %w", err)
	}
	s := &csvSource{path: path, agency: agency, f: f, size: st.Size(), log: log, loggedUpTo: loggedUpTo, today: today}
	br := bufio.NewReaderSize(f, 64<<10)
	if bom, err := br.Peek(3); err == nil && string(bom) == "\xef\xbb\xbf" {
		br.Discard(3) // a UTF-8 byte order mark from a spreadsheet export
		s.bom = 3
	}
	s.cr = csv.NewReader(br)
	s.cr.FieldsPerRecord = -1 // counted per row, to report the line
	s.cr.ReuseRecord = true
	return s, nil
}

// fieldNames name the columns of an agency file, for error messages.
var fieldNames = [...]string{lottery.FieldFirstName, lottery.FieldLastName, lottery.FieldDocument, lottery.FieldBirthdate, lottery.FieldNumber}

// errFields is the reason for a row with the wrong number of fields.
var errFields = errors.New("row does not have 5 fields (first name, last name, document, birthdate, number)")

func (s *csvSource) Next() (lottery.Bet, error) {
	for {
		rec, err := s.cr.Read()
		if err == io.EOF {
			return lottery.Bet{}, io.EOF
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			// A quote left open swallows every line up to the error (or the
			// end of the file): name the line where the field began and
			// count each line lost as a row not sent.
			s.lastLine = perr.Line
			lost := max(perr.Line-perr.StartLine+1, 1)
			why := perr.Err
			if lost > 1 {
				why = fmt.Errorf("%w: the field opened on this line runs to line %d, so %d lines could not be read", perr.Err, perr.Line, lost)
			}
			e := &RowError{File: s.path, Line: perr.StartLine, Field: "-", Err: why}
			if s.unreadable == nil {
				s.unreadable = e
			}
			s.lost += lost
			s.skip(e)
			s.discarded += lost - 1
			continue
		}
		if err != nil {
			return lottery.Bet{}, fmt.Errorf("read %s: %w", s.path, err)
		}
		line, _ := s.cr.FieldPos(0)
		s.lastLine = line
		bet, rerr := s.parse(rec, line)
		if rerr != nil {
			s.skip(rerr)
			continue
		}
		return bet, nil
	}
}

func (s *csvSource) parse(rec []string, line int) (lottery.Bet, *RowError) {
	if len(rec) != len(fieldNames) {
		return lottery.Bet{}, &RowError{File: s.path, Line: line, Field: "-", Err: errFields}
	}
	bet, err := lottery.FromFields(s.agency, rec[0], rec[1], rec[2], rec[3], rec[4])
	if err == nil {
		err = bet.ValidateAt(s.today)
	}
	if err != nil {
		var ve *lottery.ValidationError
		errors.As(err, &ve)
		return lottery.Bet{}, &RowError{File: s.path, Line: line, Field: ve.Field, Err: err}
	}
	return bet, nil
}

func (s *csvSource) skip(e *RowError) {
	s.discarded++
	if e.Line > s.loggedUpTo {
		s.log.Warningf("action: leer_apuesta | result: fail | archivo: %s | linea: %d | campo: %s | error: %s",
			logformat.Value(e.File), e.Line, e.Field, logformat.Value(e.Err.Error()))
	}
}

// Progress is the fraction of the file's bytes the CSV reader consumed (not
// the read-ahead of its buffer).
func (s *csvSource) Progress() float64 {
	if s.size == 0 {
		return 1
	}
	return min(float64(s.cr.InputOffset()+s.bom)/float64(s.size), 1)
}

func (s *csvSource) Discarded() int { return s.discarded }

func (s *csvSource) Err() error {
	if s.unreadable == nil {
		return nil
	}
	return fmt.Errorf("%s could not be read whole: %d rows lost to CSV syntax, the first at %w; fix the file and run the agency again (the bets stored are kept)",
		s.path, s.lost, s.unreadable)
}

// LastLine is the line of the last row read.
func (s *csvSource) LastLine() int { return s.lastLine }

func (s *csvSource) Close() error {
	err := s.f.Close()
	if err == nil {
		s.log.Infof("action: close_file | result: success | archivo: %s", s.path)
	}
	return err
}

// singleSource yields the one bet of course exercise 5.
type singleSource struct {
	bet  lottery.Bet
	done bool
}

func (s *singleSource) Next() (lottery.Bet, error) {
	if s.done {
		return lottery.Bet{}, io.EOF
	}
	s.done = true
	return s.bet, nil
}

func (s *singleSource) Progress() float64 {
	if s.done {
		return 1
	}
	return 0
}

func (s *singleSource) Discarded() int { return 0 }
func (s *singleSource) Err() error     { return nil }
func (s *singleSource) Close() error   { return nil }

// singleBetEnv are the variables of single-bet mode.
var singleBetEnv = [...]string{"NOMBRE", "APELLIDO", "DOCUMENTO", "NACIMIENTO", "NUMERO"}

// singleBetFromEnv returns the bet given by the environment, ok=false when
// none of its variables is set, and an error naming the variable that is
// missing or invalid.
func singleBetFromEnv(agency int, getenv func(string) string) (bet lottery.Bet, ok bool, err error) {
	set := 0
	for _, k := range singleBetEnv {
		if getenv(k) != "" {
			set++
		}
	}
	if set == 0 {
		return lottery.Bet{}, false, nil
	}
	for _, k := range singleBetEnv {
		if getenv(k) == "" {
			return lottery.Bet{}, true, fmt.Errorf("single-bet mode: %s is not set (all of %v are needed)", k, singleBetEnv)
		}
	}
	bet = lottery.Bet{Agency: agency, FirstName: getenv("NOMBRE"), LastName: getenv("APELLIDO"), Document: getenv("DOCUMENTO")}
	if bet.Birthdate, err = lottery.ParseDate(getenv("NACIMIENTO")); err != nil {
		return bet, true, fmt.Errorf("single-bet mode: NACIMIENTO %q %w", getenv("NACIMIENTO"), err)
	}
	if bet.Number, err = strconv.Atoi(getenv("NUMERO")); err != nil {
		return bet, true, fmt.Errorf("single-bet mode: NUMERO %q %w", getenv("NUMERO"), lottery.ErrNumberRange)
	}
	if err := bet.Validate(); err != nil {
		return bet, true, fmt.Errorf("single-bet mode: %w", err)
	}
	return bet, true, nil
}

// ReadFile reads the agency's CSV file at path as the agency does for a
// round that started on day: fn gets each valid bet, in the order the
// agency sends them (invalid rows skipped, as it skips them). Its error is
// the file's: unreadable, or with rows a syntax error swallowed (which the
// agency never finishes with).
func ReadFile(path string, agency int, day time.Time, fn func(bet *lottery.Bet)) error {
	src, err := openCSV(path, agency, logformat.Discard, 1<<62, day)
	if err != nil {
		return err
	}
	defer src.Close()
	for {
		bet, err := src.Next()
		if err == io.EOF {
			return src.Err()
		}
		if err != nil {
			return err
		}
		fn(&bet)
	}
}
