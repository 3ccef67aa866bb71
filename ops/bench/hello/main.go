// Command hello is the yardstick of issue 20 item 2: a bare net/http server answering every
// request with a small JSON body, which ops/bench/wrk-patient.sh measures beside
// GET /patients/{id} in the same sitting (the target: the read at 25% of this or better).
package main

import (
	"flag"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:14999", "listen address")
	flag.Parse()
	body := []byte(`{"hello":"world"}` + "\n")
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})))
}
