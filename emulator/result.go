package emulator

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// ResultMessages are NHN Certificate Manager's result codes and messages, as
// worded in the v1.3 (public, English) API document. 52008's "{}" are
// placeholders in the document and are served as they are.
var ResultMessages = map[int]string{
	52000: "Certificate name does not exist.",
	52001: "Certificate file does not exist.",
	52002: "There are more than one certificate file.",
	52003: "The certificate file is not a PEM file.",
	52004: "The certificate name in the file is different from the requested certificate name.",
	52005: "Certificate file has expired.",
	52006: "The certificate has an invalid certificate authority name.",
	52007: "The requested certificate file should be one.",
	52008: "The maximum permitted size is {} bytes. However, the requested {} bytes.",
	52009: "Certificate id does not exist.",
}

// Result codes used by the emulator.
const (
	ResultSuccess             = 0
	ResultNameNotExist        = 52000
	ResultFileNotExist        = 52001
	ResultIDNotExist          = 52009 // answered with HTTP 404, unlike the others
	SuccessResultMessage      = "SUCCESS"
	resultUnknownErrorMessage = "Unknown error."
)

type resultHeader struct {
	ResultCode    int    `json:"resultCode"`
	ResultMessage string `json:"resultMessage"`
	IsSuccessful  bool   `json:"isSuccessful"`
}

var successHeader = resultHeader{ResultCode: ResultSuccess, ResultMessage: SuccessResultMessage, IsSuccessful: true}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"header":{"resultCode":500,"resultMessage":"encoding error","isSuccessful":false}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError answers with the NHN JSON header shape and the HTTP status as
// resultCode (an assumption for gateway and auth errors).
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Header resultHeader `json:"header"`
	}{resultHeader{ResultCode: status, ResultMessage: msg}})
}

// writeResult answers with an NHN result code and body {}: HTTP 200, as
// NHN does for the name calls, except 52009 (unknown certificateId), which
// NHN's v1.3 guide says comes with HTTP 404.
func writeResult(w http.ResponseWriter, code int) {
	status := http.StatusOK
	if code == ResultIDNotExist {
		status = http.StatusNotFound
	}
	msg, ok := ResultMessages[code]
	if !ok {
		msg = resultUnknownErrorMessage
	}
	writeJSON(w, status, struct {
		Header resultHeader `json:"header"`
		Body   struct{}     `json:"body"`
	}{resultHeader{ResultCode: code, ResultMessage: msg}, struct{}{}})
}
