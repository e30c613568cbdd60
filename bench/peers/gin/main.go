// The peer of the read and write benches: the seed's stack (Go, Gin, PostgreSQL through
// lib/pq, Redis through redigo, HS256 JWTs through golang-jwt) serving AgentOS's two bench
// routes with the same semantics, on the same database:
//
//	GET  /v1/agents/:id            JWT verify, tenant check, Redis read-through cache, PostgreSQL
//	POST /v1/threads/:id/messages  JWT verify, tenant check, one insert, JSON reply (201)
//
// Built offline from Debian's packages (see build.sh). Configured by the environment:
// PEER_ADDR (127.0.0.1:8090), DATABASE_URL, REDIS_ADDR (127.0.0.1:6379), REDIS_PREFIX,
// JWT_SECRET, PEER_CACHE_TTL_S (30, as AgentOS's edge cache), PEER_DB_POOL (10, AgentOS's default).
package main

import (
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt"
	"github.com/gomodule/redigo/redis"
	_ "github.com/lib/pq"
)

func env(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

// apiError answers in AgentOS's error shape (SPEC): {"error":{"code","message"}}.
func apiError(c *gin.Context, status int, code, message string) {
	c.AbortWithStatusJSON(status, gin.H{"error": gin.H{"code": code, "message": message}})
}

type principal struct {
	userID, orgID, role string
}

// authenticate verifies the HS256 access token (algorithm pinned, exp/iat/sub required),
// like src/platform/jwt.ts, and puts the principal on the context.
func authenticate(secret []byte) gin.HandlerFunc {
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}))
	keyFunc := func(*jwt.Token) (interface{}, error) { return secret, nil }
	return func(c *gin.Context) {
		header := c.GetHeader("Authorization")
		if len(header) < 8 || !strings.EqualFold(header[:7], "bearer ") {
			apiError(c, 401, "unauthorized", "Missing or invalid Authorization header.")
			return
		}
		claims := jwt.MapClaims{}
		if _, err := parser.ParseWithClaims(strings.TrimSpace(header[7:]), claims, keyFunc); err != nil {
			if ve, ok := err.(*jwt.ValidationError); ok && ve.Errors&jwt.ValidationErrorExpired != 0 {
				apiError(c, 401, "token_expired", "The access token has expired.")
				return
			}
			apiError(c, 401, "unauthorized", "The access token is invalid.")
			return
		}
		sub, _ := claims["sub"].(string)
		org, _ := claims["org"].(string)
		role, _ := claims["role"].(string)
		_, hasExp := claims["exp"].(float64)
		_, hasIat := claims["iat"].(float64)
		if sub == "" || org == "" || role == "" || !hasExp || !hasIat {
			apiError(c, 401, "unauthorized", "The access token is invalid.")
			return
		}
		c.Set("principal", principal{sub, org, role})
		c.Next()
	}
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var idMu sync.Mutex
var lastMs int64
var lastRandom [10]byte

// newID makes `<prefix>_<ULID>` ids, monotonic within the process, like src/platform/ids.ts.
func newID(prefix string) string {
	idMu.Lock()
	now := time.Now().UnixMilli()
	if now <= lastMs {
		for i := 9; i >= 0; i-- {
			lastRandom[i]++
			if lastRandom[i] != 0 {
				break
			}
		}
	} else {
		lastMs = now
		rand.Read(lastRandom[:])
	}
	ms, rnd := lastMs, lastRandom
	idMu.Unlock()
	var b [26]byte
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms%32]
		ms /= 32
	}
	var buffer, bits uint
	j := 10
	for _, x := range rnd {
		buffer = buffer<<8 | uint(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			b[j] = crockford[(buffer>>bits)&31]
			j++
		}
		buffer &= 1<<bits - 1
	}
	return prefix + "_" + string(b[:])
}

// isID mirrors isId(): anything that is not an id of the type answers 404.
func isID(prefix, v string) bool {
	if len(v) != len(prefix)+27 || !strings.HasPrefix(v, prefix+"_") {
		return false
	}
	for _, ch := range v[len(prefix)+1:] {
		if !strings.ContainsRune(crockford, ch) {
			return false
		}
	}
	return true
}

func iso(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type memoryBlock struct {
	Label string `json:"label"`
	Value string `json:"value"`
	Limit int    `json:"limit"`
}

type agentOut struct {
	ID              string          `json:"id"`
	Object          string          `json:"object"`
	Name            string          `json:"name"`
	Model           string          `json:"model"`
	Instructions    string          `json:"instructions"`
	Tools           json.RawMessage `json:"tools"`
	MemoryBlocks    []memoryBlock   `json:"memory_blocks"`
	ContextWindow   int             `json:"context_window"`
	MaxSteps        int             `json:"max_steps"`
	Temperature     *float64        `json:"temperature"`
	TopP            *float64        `json:"top_p"`
	MaxOutputTokens *int            `json:"max_output_tokens"`
	ContextStrategy string          `json:"context_strategy"`
	Metadata        json.RawMessage `json:"metadata"`
	CreatedAt       string          `json:"created_at"`
	UpdatedAt       string          `json:"updated_at"`
}

type messageIn struct {
	Role     string          `json:"role"`
	Content  *string         `json:"content"`
	Metadata json.RawMessage `json:"metadata"`
}

type messageOut struct {
	ID         string          `json:"id"`
	Object     string          `json:"object"`
	ThreadID   string          `json:"thread_id"`
	Role       string          `json:"role"`
	Content    *string         `json:"content"`
	ToolCalls  json.RawMessage `json:"tool_calls"`
	ToolCallID *string         `json:"tool_call_id"`
	RunID      *string         `json:"run_id"`
	Metadata   json.RawMessage `json:"metadata"`
	Parsed     json.RawMessage `json:"parsed"`
	CreatedAt  string          `json:"created_at"`
}

func main() {
	secret := []byte(env("JWT_SECRET", ""))
	if len(secret) < 32 {
		log.Fatal("JWT_SECRET (at least 32 characters) is required")
	}
	db, err := sql.Open("postgres", env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"))
	if err != nil {
		log.Fatal(err)
	}
	pool, _ := strconv.Atoi(env("PEER_DB_POOL", "10"))
	db.SetMaxOpenConns(pool)
	db.SetMaxIdleConns(pool)
	ttl := env("PEER_CACHE_TTL_S", "30")
	prefix := env("REDIS_PREFIX", "peer") + ":agent:"
	redisAddr := env("REDIS_ADDR", "127.0.0.1:6379")
	rpool := &redis.Pool{
		MaxIdle: 128, MaxActive: 0, IdleTimeout: time.Minute,
		Dial: func() (redis.Conn, error) { return redis.Dial("tcp", redisAddr) },
	}
	// Prepared once: one round trip per statement execution.
	agentStmt, err := db.Prepare(`select name, model, instructions, tools, context_window, max_steps, temperature, top_p, max_output_tokens, context_strategy, metadata, created_at, updated_at from agents where id = $1 and org_id = $2`)
	if err != nil {
		log.Fatal(err)
	}
	blocksStmt, err := db.Prepare(`select label, value, char_limit from (select 0 as k, id, label, value, char_limit from memory_blocks where org_id = $1 and agent_id = $2 union all select 1, s.id, s.label, s.value, s.char_limit from shared_blocks s join shared_block_agents a on a.block_id = s.id where s.org_id = $1 and a.agent_id = $2) b order by k, id`)
	if err != nil {
		log.Fatal(err)
	}
	insertStmt, err := db.Prepare(`insert into messages (id, org_id, thread_id, role, content, metadata)
		select $1, $2, t.id, $3, $4, $5::jsonb from threads t where t.id = $6 and t.org_id = $2
		returning created_at, metadata`)
	if err != nil {
		log.Fatal(err)
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/healthz", func(c *gin.Context) { c.JSON(200, gin.H{"status": "ok"}) })
	v1 := r.Group("/v1", authenticate(secret))

	v1.GET("/agents/:id", func(c *gin.Context) {
		p := c.MustGet("principal").(principal)
		id := c.Param("id")
		if !isID("agt", id) {
			apiError(c, 404, "not_found", fmt.Sprintf("No agent with id '%s'.", id))
			return
		}
		// The key holds the organization: a cached agent is only ever served to its tenant.
		key := prefix + p.orgID + ":" + id
		conn := rpool.Get()
		cached, err := redis.Bytes(conn.Do("GET", key))
		conn.Close()
		if err == nil {
			c.Data(200, "application/json", cached)
			return
		}
		var a agentOut
		var tools, metadata []byte
		var created, updated time.Time
		err = agentStmt.QueryRow(id, p.orgID).Scan(&a.Name, &a.Model, &a.Instructions, &tools, &a.ContextWindow, &a.MaxSteps, &a.Temperature, &a.TopP, &a.MaxOutputTokens, &a.ContextStrategy, &metadata, &created, &updated)
		if err == sql.ErrNoRows {
			apiError(c, 404, "not_found", fmt.Sprintf("No agent with id '%s'.", id))
			return
		} else if err != nil {
			apiError(c, 500, "internal", err.Error())
			return
		}
		rows, err := blocksStmt.Query(p.orgID, id)
		if err != nil {
			apiError(c, 500, "internal", err.Error())
			return
		}
		a.MemoryBlocks = []memoryBlock{}
		for rows.Next() {
			var b memoryBlock
			if err := rows.Scan(&b.Label, &b.Value, &b.Limit); err != nil {
				rows.Close()
				apiError(c, 500, "internal", err.Error())
				return
			}
			a.MemoryBlocks = append(a.MemoryBlocks, b)
		}
		rows.Close()
		a.ID, a.Object, a.Tools, a.Metadata, a.CreatedAt, a.UpdatedAt = id, "agent", tools, metadata, iso(created), iso(updated)
		body, _ := json.Marshal(a)
		conn = rpool.Get()
		conn.Do("SET", key, body, "EX", ttl)
		conn.Close()
		c.Data(200, "application/json", body)
	})

	v1.POST("/threads/:id/messages", func(c *gin.Context) {
		p := c.MustGet("principal").(principal)
		threadID := c.Param("id")
		var in messageIn
		if err := c.ShouldBindJSON(&in); err != nil {
			apiError(c, 400, "invalid_request", "The body must be a JSON object: "+err.Error())
			return
		}
		if in.Role != "user" && in.Role != "assistant" {
			apiError(c, 400, "invalid_request", "role: must be one of user, assistant")
			return
		}
		if in.Content == nil || len(*in.Content) < 1 || len(*in.Content) > 200_000 {
			apiError(c, 400, "invalid_request", "content: a string of 1 to 200000 characters is required")
			return
		}
		metadata := in.Metadata
		if len(metadata) == 0 || string(metadata) == "null" {
			metadata = json.RawMessage("{}")
		} else if metadata[0] != '{' {
			apiError(c, 400, "invalid_request", "metadata: must be an object")
			return
		}
		if !isID("thr", threadID) {
			apiError(c, 404, "not_found", fmt.Sprintf("No thread with id '%s'.", threadID))
			return
		}
		id := newID("msg")
		var created time.Time
		var stored []byte
		// One statement: inserted only when the thread exists in the caller's organization.
		err := insertStmt.QueryRow(id, p.orgID, in.Role, *in.Content, string(metadata), threadID).Scan(&created, &stored)
		if err == sql.ErrNoRows {
			apiError(c, 404, "not_found", fmt.Sprintf("No thread with id '%s'.", threadID))
			return
		} else if err != nil {
			apiError(c, 500, "internal", err.Error())
			return
		}
		c.JSON(201, messageOut{
			ID: id, Object: "message", ThreadID: threadID, Role: in.Role, Content: in.Content,
			ToolCalls: json.RawMessage("null"), Parsed: json.RawMessage("null"), Metadata: stored, CreatedAt: iso(created),
		})
	})

	addr := env("PEER_ADDR", "127.0.0.1:8090")
	log.Printf("gin peer listening on http://%s", addr)
	srv := &http.Server{Addr: addr, Handler: r, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
