// The chat page. Every piece of user text is put on the page with textContent, never as
// HTML. The connection goes back to the page's own host, ws or wss to match the page.
//
// The log is the page's: it is kept across reconnects and across /quit and rejoin, with a
// gap line where the page was out of the room. The reconnect delay starts at 0.5 s and
// doubles to 10 s; `?retry_ms=N` sets the first delay (100 to 60000 ms; the tests use it
// to watch the countdown).
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
  const people = $('people');
  const peopleToggle = $('people-toggle');
  const users = $('users');
  const usersNote = $('users-note');
  const userCount = $('user-count');
  const sayForm = $('say-form');
  const sayInput = $('say');
  const sendButton = $('send');
  const rejoinButton = $('rejoin');
  const sayError = $('say-error');
  const sayCount = $('say-count');

  const NICK_MAX = 24;
  const NICK_CHAR = /^[A-Za-z0-9_.-]$/;
  const CLOSE_TOO_BIG = 1009;

  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/chat`;
  const firstRetryDelay = retryOption();
  let socket = null;
  let myNick = null;          // set once the server welcomed us
  let wantedNick = null;      // what we asked for; re-sent after a reconnect
  let maxTextChars = 2000;    // the room says its limit in "welcome"
  let retryDelay = firstRetryDelay;
  let retryTimer = null;
  let countdownTimer = null;
  let outSince = null;        // when the page lost the room: {time, why: 'lost' | 'left'}
  const shown = new Set();    // keys of the lines in the log, so history is not shown twice

  function retryOption() {
    const value = Number(new URLSearchParams(location.search).get('retry_ms'));
    return Number.isInteger(value) && value >= 100 && value <= 60000 ? value : 500;
  }

  function setStatus(kind, text) {
    statusBox.className = `status ${kind}`;
    statusBox.textContent = text;
  }

  function timeOf(ms) {
    const t = new Date(typeof ms === 'number' ? ms : Date.now());
    return t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  // Characters as the room counts them: code points, after trimming the ASCII white space
  // the server trims.
  const lengthOf = (text) => [...text.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, '')].length;

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
    return item;
  }

  function showUsers(list) {
    users.replaceChildren(...list.map((nick) => {
      const li = document.createElement('li');
      li.textContent = nick;
      li.title = nick; // the whole name, when the list cuts it with an ellipsis
      if (nick === myNick) li.className = 'me';
      return li;
    }));
    userCount.textContent = String(list.length);
  }

  // A line someone wrote: your own get "mine" (and "(you)" after the name, if it has one).
  function addWritten(kind, ev, parts) {
    const mine = ev.from === myNick;
    if (mine && parts[0][0] === 'author') parts.splice(1, 0, ['you', '(you)']);
    addLine(mine ? `${kind} mine` : kind, ev.time, parts);
  }

  const keyOf = (ev) => JSON.stringify([ev.type, ev.time, ev.from, ev.text]);
  const SHOWN_KEYS = 1000; // far more than the room's history (50): older keys are never needed

  function remember(ev) {
    shown.add(keyOf(ev));
    if (shown.size > SHOWN_KEYS) shown.delete(shown.values().next().value);
  }

  function showEvent(ev, catchup = false) {
    const history = catchup ? ' history' : '';
    switch (ev.type) {
      case 'message':
        remember(ev);
        addWritten(`message${history}`, ev, [['author', ev.from], ['text', ev.text]]);
        break;
      case 'action':
        remember(ev);
        addWritten(`action${history}`, ev, [['', `* ${ev.from} ${ev.text}`]]);
        break;
      case 'private':
        addWritten('private', ev, [['author', `${ev.from} → ${ev.to}`], ['text', ev.text]]);
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

  // Back in the room after a gap: mark it, then show what the room's history holds that the
  // log does not (lines said while the page was away, if the room kept them).
  function showGap(since, ev) {
    const missed = (ev.history || []).filter((past) => !shown.has(keyOf(past)));
    const what = since.why === 'left' ? 'you left' : 'connection lost';
    const recovered = missed.length
      ? `the ${missed.length} line${missed.length === 1 ? '' : 's'} below ${missed.length === 1 ? 'was' : 'were'} said meanwhile`
      : 'lines said meanwhile may be missing';
    addLine('gap', ev.time, [['', `${what} at ${timeOf(since.time)}, back at ${timeOf(ev.time)}: ${recovered}`]]);
    for (const past of missed) showEvent(past, true);
  }

  function welcome(ev) {
    myNick = ev.nick;
    wantedNick = ev.nick;
    if (Number.isInteger(ev.max_text_chars) && ev.max_text_chars > 0) maxTextChars = ev.max_text_chars;
    joinPanel.hidden = true;
    room.hidden = false;
    setInRoom(true);
    if (log.childElementCount > 0) {
      showGap(outSince || { time: ev.time, why: 'lost' }, ev);
    } else {
      for (const past of ev.history || []) showEvent(past, true);
      addLine('notice', ev.time, [['', `welcome, ${ev.nick}`]]);
    }
    outSince = null;
    showUsers(ev.users || []);
    updateCount();
    sayInput.focus();
  }

  // In the room, or out of it after /quit: out, the list is not kept up to date (so it is
  // emptied), the message box takes no typing, and "Rejoin" brings the page back.
  function setInRoom(inRoom) {
    sayInput.disabled = !inRoom;
    sendButton.hidden = !inRoom;
    rejoinButton.hidden = inRoom;
    usersNote.hidden = inRoom;
    sayInput.placeholder = inRoom ? 'Say something…' : 'You left the room';
    if (!inRoom) {
      users.replaceChildren();
      userCount.textContent = '0';
      sayError.textContent = '';
    }
  }

  function onMessage(event) {
    let ev;
    try { ev = JSON.parse(event.data); } catch { return; }
    switch (ev.type) {
      case 'welcome':
        welcome(ev);
        break;
      case 'users':
        showUsers(ev.users || []);
        break;
      case 'error':
        if (!myNick) {
          joinPanel.hidden = false;
          room.hidden = true;
          joinError.textContent = ev.message;
          if (wantedNick) nickInput.value = wantedNick;
          wantedNick = null;
        } else {
          addLine('err', ev.time, [['', ev.message]]);
        }
        break;
      default:
        showEvent(ev);
    }
  }

  function stopTimers() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = null;
    countdownTimer = null;
  }

  // "reconnecting in N s", counted down each second until the next attempt.
  function scheduleReconnect() {
    const due = Date.now() + retryDelay;
    const tick = () => {
      const seconds = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      setStatus('reconnecting', `connection lost — reconnecting in ${seconds} s`);
    };
    tick();
    countdownTimer = setInterval(tick, 200);
    retryTimer = setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, Math.max(10000, firstRetryDelay));
  }

  function connect() {
    stopTimers();
    setStatus(retryDelay > firstRetryDelay ? 'reconnecting' : 'connecting', 'connecting…');
    socket = new WebSocket(url);
    socket.addEventListener('open', () => {
      retryDelay = firstRetryDelay;
      setStatus('online', 'connected');
      if (wantedNick) socket.send(JSON.stringify({ type: 'join', nick: wantedNick }));
    });
    socket.addEventListener('message', onMessage);
    socket.addEventListener('close', (event) => {
      socket = null;
      const wasIn = myNick !== null;
      myNick = null;
      if (wasIn && !outSince) outSince = { time: Date.now(), why: 'lost' };
      if (event.code === 1000 && event.reason === 'bye') {
        // We asked to /quit: stay out until "Rejoin".
        outSince = { time: Date.now(), why: 'left' };
        setStatus('offline', 'you left the room');
        addLine('notice', Date.now(), [['', 'you left the room — press Rejoin to come back']]);
        setInRoom(false);
        rejoinButton.textContent = wantedNick ? `Rejoin as ${wantedNick}` : 'Rejoin';
        rejoinButton.focus();
        return;
      }
      if (event.code === CLOSE_TOO_BIG && wasIn) {
        addLine('err', Date.now(), [['', 'the server refused a message as too large and closed the connection; it was not sent']]);
      }
      scheduleReconnect();
    });
  }

  function validNickProblem(nick) {
    const chars = [...nick];
    if (chars.length === 0) return 'Type a nickname: 1 to 24 characters, letters A–Z or a–z, digits 0–9, "_", "-" or ".".';
    const bad = [...new Set(chars.filter((c) => !NICK_CHAR.test(c)))];
    if (bad.length) {
      const named = bad.map((c) => (c === ' ' ? 'spaces' : `"${c}"`)).join(', ');
      return `A nickname can hold only letters A–Z or a–z, digits 0–9, "_", "-" and "." — not ${named}.`;
    }
    if (chars.length > NICK_MAX) return `That nickname is ${chars.length} characters long; the limit is ${NICK_MAX}.`;
    return '';
  }

  joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const nick = nickInput.value.trim();
    const problem = validNickProblem(nick);
    joinError.textContent = problem;
    nickInput.setAttribute('aria-invalid', problem ? 'true' : 'false');
    if (problem) {
      nickInput.focus();
      return;
    }
    wantedNick = nick;
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: 'join', nick: wantedNick }));
    }
  });

  // The counter under the message box: "length / limit", amber near it, red past it.
  function updateCount() {
    const length = lengthOf(sayInput.value);
    sayCount.textContent = `${length} / ${maxTextChars}`;
    sayCount.classList.toggle('over', length > maxTextChars);
    sayCount.classList.toggle('near', length <= maxTextChars && length >= maxTextChars * 0.9);
    const over = length > maxTextChars;
    sayInput.setAttribute('aria-invalid', over ? 'true' : 'false');
    if (!over && sayError.dataset.reason === 'too-long') clearSayError();
  }

  function clearSayError() {
    sayError.textContent = '';
    delete sayError.dataset.reason;
  }

  sayInput.addEventListener('input', updateCount);

  sayForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = sayInput.value;
    if (!text.trim()) return;
    const length = lengthOf(text);
    if (length > maxTextChars) {
      // Refused here, with the reason; the line stays in the box to be shortened.
      sayError.textContent = `Not sent: the line is ${length} characters; the limit is ${maxTextChars}.`;
      sayError.dataset.reason = 'too-long';
      return;
    }
    if (!socket || socket.readyState !== WebSocket.OPEN || !myNick) {
      sayError.textContent = 'Not sent: not connected. The line stays in the box; send it again once connected.';
      sayError.dataset.reason = 'offline';
      return;
    }
    clearSayError();
    socket.send(JSON.stringify({ type: 'say', text }));
    sayInput.value = '';
    updateCount();
  });

  rejoinButton.addEventListener('click', () => {
    rejoinButton.hidden = true;
    retryDelay = firstRetryDelay;
    connect(); // "open" sends the join with the same nickname
  });

  peopleToggle.addEventListener('click', () => {
    const open = people.classList.toggle('open');
    peopleToggle.setAttribute('aria-expanded', String(open));
    peopleToggle.textContent = open ? 'Hide people' : 'Show people';
  });

  updateCount();
  connect();
})();
