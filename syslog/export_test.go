package syslog

// WaitDisconnected blocks until the client's reader has seen the collector close the current
// connection, so a test can send next without racing the hang-up.
func WaitDisconnected(c *Client) {
	c.mu.Lock()
	cn := c.conn
	c.mu.Unlock()
	if cn != nil {
		<-cn.dead
	}
}
