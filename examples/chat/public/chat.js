// The chat page. Every piece of user text is put on the page with textContent, never as
// HTML. The connection goes back to the page's own host, ws or wss to match the page.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const statusBox = $('status');
  const joinPanel = $('join');
  const joinForm = $('join-form');
  const joinError = $('join-error');
  const nickInput = $('nick');
  const room = $('room');
  const log = $('log');
  const users = $('users');
  const userCount = $('user-count');
  const sayForm = $('say-form');
  const sayInput = $('say');

  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/chat`;
  let socket = null;
  let myNick = null;        // set once the server welcomed us
  let wantedNick = null;    // what we asked for; re-sent after a reconnect
  let retryDelay = 500;     // back-off: 0.5 s doubling to 10 s
  let retryTimer = null;

  function setStatus(kind, text) {
    statusBox.className = `status ${kind}`;
    statusBox.textContent = text;
  }

  function timeOf(ms) {
    const t = new Date(typeof ms === 'number' ? ms : Date.now());
    return t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  // Append a line: parts are [className, text] pairs, all rendered as text.
  function addLine(kind, time, parts) {
    const item = document.createElement('li');
    item.className = kind;
    const stamp = document.createElement('time');
    stamp.textContent = timeOf(time);
    item.appendChild(stamp);
    for (const [cls, text] of parts) {
      const span = document.createElement('span');
      if (cls) span.className = cls;
      span.textContent = text;
      item.appendChild(span);
    }
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(item);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function showUsers(list) {
    users.replaceChildren(...list.map((nick) => {
      const li = document.createElement('li');
      li.textContent = nick;
      if (nick === myNick) li.className = 'me';
      return li;
    }));
    userCount.textContent = String(list.length);
  }

  function showEvent(ev, catchup = false) {
    switch (ev.type) {
      case 'message':
        addLine(catchup ? 'message history' : 'message', ev.time, [['author', ev.from], ['text', ev.text]]);
        break;
      case 'action':
        addLine('action', ev.time, [['', `* ${ev.from} ${ev.text}`]]);
        break;
      case 'private':
        addLine('private', ev.time, [['author', `${ev.from} → ${ev.to}`], ['text', ev.text]]);
        break;
      case 'joined':
        addLine('notice', ev.time, [['', `${ev.nick} joined`]]);
        break;
      case 'left':
        addLine('notice', ev.time, [['', `${ev.nick} left`]]);
        break;
      case 'renamed':
        if (ev.from === myNick) { myNick = ev.to; wantedNick = ev.to; }
        addLine('notice', ev.time, [['', `${ev.from} is now known as ${ev.to}`]]);
        break;
      default:
        break;
    }
  }

  function onMessage(event) {
    let ev;
    try { ev = JSON.parse(event.data); } catch { return; }
    switch (ev.type) {
      case 'welcome':
        myNick = ev.nick;
        wantedNick = ev.nick;
        joinPanel.hidden = true;
        room.hidden = false;
        log.replaceChildren();
        for (const past of ev.history || []) showEvent(past, true);
        showUsers(ev.users || []);
        addLine('notice', ev.time, [['', `welcome, ${ev.nick}`]]);
        sayInput.focus();
        break;
      case 'users':
        showUsers(ev.users || []);
        break;
      case 'error':
        if (!myNick) {
          joinPanel.hidden = false;
          room.hidden = true;
          joinError.textContent = ev.message;
          wantedNick = null;
        } else {
          addLine('err', ev.time, [['', ev.message]]);
        }
        break;
      default:
        showEvent(ev);
    }
  }

  function connect() {
    retryTimer = null;
    setStatus(retryDelay > 500 ? 'reconnecting' : 'connecting', 'connecting…');
    socket = new WebSocket(url);
    socket.addEventListener('open', () => {
      retryDelay = 500;
      setStatus('online', 'connected');
      if (wantedNick) socket.send(JSON.stringify({ type: 'join', nick: wantedNick }));
    });
    socket.addEventListener('message', onMessage);
    socket.addEventListener('close', (event) => {
      socket = null;
      if (event.code === 1000 && event.reason === 'bye') {
        // We asked to /quit: stay out.
        setStatus('offline', 'you left the room — reload to come back');
        myNick = null;
        wantedNick = null;
        return;
      }
      myNick = null;
      const seconds = (retryDelay / 1000).toFixed(1);
      setStatus('reconnecting', `connection lost — reconnecting in ${seconds} s`);
      retryTimer = setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    });
  }

  joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    joinError.textContent = '';
    wantedNick = nickInput.value.trim();
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: 'join', nick: wantedNick }));
    }
  });

  sayForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = sayInput.value;
    if (!text.trim() || !socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type: 'say', text }));
    sayInput.value = '';
  });

  connect();
})();
