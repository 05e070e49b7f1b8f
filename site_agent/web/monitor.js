var oe,k,ze,Wt,F,He,Ie,We,ge,Q,q,qe,be,$e,ve,qt,te={},ne=[],Vt=/acit|ex(?:s|g|n|p|$)|rph|grid|ows|mnc|ntw|ine[ch]|zoo|^ord|itera/i,ae=Array.isArray;function A(e,t){for(var n in t)e[n]=t[n];return e}function ye(e){e&&e.parentNode&&e.parentNode.removeChild(e)}function we(e,t,n){var r,o,a,s={};for(a in t)a=="key"?r=t[a]:a=="ref"?o=t[a]:s[a]=t[a];if(arguments.length>2&&(s.children=arguments.length>3?oe.call(arguments,2):n),typeof e=="function"&&e.defaultProps!=null)for(a in e.defaultProps)s[a]===void 0&&(s[a]=e.defaultProps[a]);return Z(e,s,r,o,null)}function Z(e,t,n,r,o){var a={type:e,props:t,key:n,ref:r,__k:null,__:null,__b:0,__e:null,__c:null,constructor:void 0,__v:o??++ze,__i:-1,__u:0};return o==null&&k.vnode!=null&&k.vnode(a),a}function se(e){return e.children}function ee(e,t){this.props=e,this.context=t}function B(e,t){if(t==null)return e.__?B(e.__,e.__i+1):null;for(var n;t<e.__k.length;t++)if((n=e.__k[t])!=null&&n.__e!=null)return n.__e;return typeof e.type=="function"?B(e):null}function Jt(e){if(e.__P&&e.__d){var t=e.__v,n=t.__e,r=[],o=[],a=A({},t);a.__v=t.__v+1,k.vnode&&k.vnode(a),xe(e.__P,a,t,e.__n,e.__P.namespaceURI,32&t.__u?[n]:null,r,n??B(t),!!(32&t.__u),o),a.__v=t.__v,a.__.__k[a.__i]=a,Xe(r,a,o),t.__e=t.__=null,a.__e!=n&&Ve(a)}}function Ve(e){if((e=e.__)!=null&&e.__c!=null)return e.__e=e.__c.base=null,e.__k.some(function(t){if(t!=null&&t.__e!=null)return e.__e=e.__c.base=t.__e}),Ve(e)}function Ue(e){(!e.__d&&(e.__d=!0)&&F.push(e)&&!re.__r++||He!=k.debounceRendering)&&((He=k.debounceRendering)||Ie)(re)}function re(){try{for(var e,t=1;F.length;)F.length>t&&F.sort(We),e=F.shift(),t=F.length,Jt(e)}finally{F.length=re.__r=0}}function Je(e,t,n,r,o,a,s,i,p,d,m){var _,l,f,h,y,b,v=r&&r.__k||ne,c=t.length;for(p=Gt(n,t,v,p,c),_=0;_<c;_++)(f=n.__k[_])!=null&&(l=f.__i!=-1&&v[f.__i]||te,f.__i=_,b=xe(e,f,l,o,a,s,i,p,d,m),h=f.__e,f.ref&&l.ref!=f.ref&&(l.ref&&ke(l.ref,null,f),m.push(f.ref,f.__c||h,f)),y==null&&h!=null&&(y=h),4&f.__u?(p=Ge(f,p,e),l.__e&&(l.__e=null)):typeof f.type=="function"&&b!==void 0?p=b:h&&(p=h.nextSibling),f.__u&=-7);return n.__e=y,p}function Gt(e,t,n,r,o){var a,s,i,p,d,m=n.length,_=m,l=0;for(e.__k=new Array(o),a=0;a<o;a++)(s=t[a])!=null&&typeof s!="boolean"&&typeof s!="function"?(typeof s=="string"||typeof s=="number"||typeof s=="bigint"||s.constructor==String?s=e.__k[a]=Z(null,s,null,null,null):ae(s)?s=e.__k[a]=Z(se,{children:s},null,null,null):s.constructor===void 0&&s.__b>0?s=e.__k[a]=Z(s.type,s.props,s.key,s.ref?s.ref:null,s.__v):e.__k[a]=s,p=a+l,s.__=e,s.__b=e.__b+1,i=null,(d=s.__i=Kt(s,n,p,_))!=-1&&(_--,(i=n[d])&&(i.__u|=2)),i==null||i.__v==null?(d==-1&&(o>m?l--:o<m&&l++),typeof s.type!="function"&&(s.__u|=4)):d!=p&&(d==p-1?l--:d==p+1?l++:(d>p?l--:l++,s.__u|=4))):e.__k[a]=null;if(_)for(a=0;a<m;a++)(i=n[a])!=null&&!(2&i.__u)&&(i.__e==r&&(r=B(i)),Qe(i,i));return r}function Ge(e,t,n){var r,o;if(typeof e.type=="function"){for(r=e.__k,o=0;r&&o<r.length;o++)r[o]&&(r[o].__=e,t=Ge(r[o],t,n));return t}e.__e!=t&&(t&&e.type&&!t.parentNode&&(t=B(e)),t=n.insertBefore(e.__e,t||null));do t=t&&t.nextSibling;while(t!=null&&t.nodeType==8);return t}function Kt(e,t,n,r){var o,a,s,i=e.key,p=e.type,d=t[n],m=d!=null&&(2&d.__u)==0;if(d===null&&i==null||m&&i==d.key&&p==d.type)return n;if(r>(m?1:0)){for(o=n-1,a=n+1;o>=0||a<t.length;)if((d=t[s=o>=0?o--:a++])!=null&&!(2&d.__u)&&i==d.key&&p==d.type)return s}return-1}function De(e,t,n){t[0]=="-"?e.setProperty(t,n??""):e[t]=n==null?"":typeof n!="number"||Vt.test(t)?n:n+"px"}function Y(e,t,n,r,o){var a,s;e:if(t=="style")if(typeof n=="string")e.style.cssText=n;else{if(typeof r=="string"&&(e.style.cssText=r=""),r)for(t in r)n&&t in n||De(e.style,t,"");if(n)for(t in n)r&&n[t]==r[t]||De(e.style,t,n[t])}else if(t[0]=="o"&&t[1]=="n")a=t!=(t=t.replace(qe,"$1")),s=t.toLowerCase(),t=s in e||t=="onFocusOut"||t=="onFocusIn"?s.slice(2):t.slice(2),e.l||(e.l={}),e.l[t+a]=n,n?r?n[q]=r[q]:(n[q]=be,e.addEventListener(t,a?ve:$e,a)):e.removeEventListener(t,a?ve:$e,a);else{if(o=="http://www.w3.org/2000/svg")t=t.replace(/xlink(H|:h)/,"h").replace(/sName$/,"s");else if(t!="width"&&t!="height"&&t!="href"&&t!="list"&&t!="form"&&t!="tabIndex"&&t!="download"&&t!="rowSpan"&&t!="colSpan"&&t!="role"&&t!="popover"&&t in e)try{e[t]=n??"";break e}catch{}typeof n=="function"||(n==null||n===!1&&t[4]!="-"?e.removeAttribute(t):e.setAttribute(t,t=="popover"&&n==1?"":n))}}function Be(e){return function(t){if(this.l){var n=this.l[t.type+e];if(t[Q]==null)t[Q]=be++;else if(t[Q]<n[q])return;return n(k.event?k.event(t):t)}}}function xe(e,t,n,r,o,a,s,i,p,d){var m,_,l,f,h,y,b,v,c,g,w,C,x,O,S,D,R=t.type;if(t.constructor!==void 0)return null;128&n.__u&&(p=!!(32&n.__u),a=[i=t.__e=n.__e]),(m=k.__b)&&m(t);e:if(typeof R=="function"){_=s.length;try{if(c=t.props,g=R.prototype&&R.prototype.render,w=(m=R.contextType)&&r[m.__c],C=m?w?w.props.value:m.__:r,n.__c?v=(l=t.__c=n.__c).__=l.__E:(g?t.__c=l=new R(c,C):(t.__c=l=new ee(c,C),l.constructor=R,l.render=Yt),w&&w.sub(l),l.state||(l.state={}),l.__n=r,f=l.__d=!0,l.__h=[],l._sb=[]),g&&l.__s==null&&(l.__s=l.state),g&&R.getDerivedStateFromProps!=null&&(l.__s==l.state&&(l.__s=A({},l.__s)),A(l.__s,R.getDerivedStateFromProps(c,l.__s))),h=l.props,y=l.state,l.__v=t,f)g&&R.getDerivedStateFromProps==null&&l.componentWillMount!=null&&l.componentWillMount(),g&&l.componentDidMount!=null&&l.__h.push(l.componentDidMount);else{if(g&&R.getDerivedStateFromProps==null&&c!==h&&l.componentWillReceiveProps!=null&&l.componentWillReceiveProps(c,C),t.__v==n.__v||!l.__e&&l.shouldComponentUpdate!=null&&l.shouldComponentUpdate(c,l.__s,C)===!1){t.__v!=n.__v&&(l.props=c,l.state=l.__s,l.__d=!1),t.__e=n.__e,t.__k=n.__k,t.__k.some(function(I){I&&(I.__=t)}),ne.push.apply(l.__h,l._sb),l._sb=[],l.__h.length&&s.push(l),i=B(n);break e}l.componentWillUpdate!=null&&l.componentWillUpdate(c,l.__s,C),g&&l.componentDidUpdate!=null&&l.__h.push(function(){l.componentDidUpdate(h,y,b)})}if(l.context=C,l.props=c,l.__P=e,l.__e=!1,x=k.__r,O=0,g)l.state=l.__s,l.__d=!1,x&&x(t),m=l.render(l.props,l.state,l.context),ne.push.apply(l.__h,l._sb),l._sb=[];else do l.__d=!1,x&&x(t),m=l.render(l.props,l.state,l.context),l.state=l.__s;while(l.__d&&++O<25);l.state=l.__s,l.getChildContext!=null&&(r=A(A({},r),l.getChildContext())),g&&!f&&l.getSnapshotBeforeUpdate!=null&&(b=l.getSnapshotBeforeUpdate(h,y)),S=m!=null&&m.type===se&&m.key==null?Ye(m.props.children):m,i=Je(e,ae(S)?S:[S],t,n,r,o,a,s,i,p,d),l.base=t.__e,t.__u&=-161,l.__h.length&&s.push(l),v&&(l.__E=l.__=null)}catch(I){if(s.length=_,t.__v=null,p||a!=null){if(I.then){for(t.__u|=p?160:128;i&&i.nodeType==8&&i.nextSibling;)i=i.nextSibling;a!=null&&(a[a.indexOf(i)]=null),t.__e=i}else if(a!=null)for(D=a.length;D--;)ye(a[D])}else t.__e=n.__e;t.__k==null&&(t.__k=n.__k||[]),I.then||Ke(t),k.__e(I,t,n)}}else a==null&&t.__v==n.__v?(t.__k=n.__k,t.__e=n.__e):i=t.__e=Xt(n.__e,t,n,r,o,a,s,p,d);return(m=k.diffed)&&m(t),128&t.__u?void 0:i}function Ke(e){e&&(e.__c&&(e.__c.__e=!0),e.__k&&e.__k.some(Ke))}function Xe(e,t,n){for(var r=0;r<n.length;r++)ke(n[r],n[++r],n[++r]);k.__c&&k.__c(t,e),e.some(function(o){try{e=o.__h,o.__h=[],e.some(function(a){a.call(o)})}catch(a){k.__e(a,o.__v)}})}function Ye(e){return typeof e!="object"||e==null||e.__b>0?e:ae(e)?e.map(Ye):e.constructor!==void 0?null:A({},e)}function Xt(e,t,n,r,o,a,s,i,p){var d,m,_,l,f,h,y,b=n.props||te,v=t.props,c=t.type;if(c=="svg"?o="http://www.w3.org/2000/svg":c=="math"?o="http://www.w3.org/1998/Math/MathML":o||(o="http://www.w3.org/1999/xhtml"),a!=null){for(d=0;d<a.length;d++)if((f=a[d])&&"setAttribute"in f==!!c&&(c?f.localName==c:f.nodeType==3)){e=f,a[d]=null;break}}if(e==null){if(c==null)return document.createTextNode(v);e=document.createElementNS(o,c,v.is&&v),i&&(k.__m&&k.__m(t,a),i=!1),a=null}if(c==null)b===v||i&&e.data==v||(e.data=v);else{if(a=c=="textarea"&&v.defaultValue!=null?null:a&&oe.call(e.childNodes),!i&&a!=null)for(b={},d=0;d<e.attributes.length;d++)b[(f=e.attributes[d]).name]=f.value;for(d in b)f=b[d],d=="dangerouslySetInnerHTML"?_=f:d=="children"||d in v||d=="value"&&"defaultValue"in v||d=="checked"&&"defaultChecked"in v||Y(e,d,null,f,o);for(d in v)f=v[d],d=="children"?l=f:d=="dangerouslySetInnerHTML"?m=f:d=="value"?h=f:d=="checked"?y=f:i&&typeof f!="function"||b[d]===f||Y(e,d,f,b[d],o);if(m)i||_&&(m.__html==_.__html||m.__html==e.innerHTML)||(e.innerHTML=m.__html),t.__k=[];else if(_&&(e.innerHTML=""),Je(t.type=="template"?e.content:e,ae(l)?l:[l],t,n,r,c=="foreignObject"?"http://www.w3.org/1999/xhtml":o,a,s,a?a[0]:n.__k&&B(n,0),i,p),a!=null)for(d=a.length;d--;)ye(a[d]);i&&c!="textarea"||(d="value",c=="progress"&&h==null?e.removeAttribute("value"):h!=null&&(h!==e[d]||c=="progress"&&!h||c=="option"&&h!=b[d])&&Y(e,d,h,b[d],o),d="checked",y!=null&&y!=e[d]&&Y(e,d,y,b[d],o))}return e}function ke(e,t,n){try{if(typeof e=="function"){var r=typeof e.__u=="function";r&&e.__u(),r&&t==null||(e.__u=e(t))}else e.current=t}catch(o){k.__e(o,n)}}function Qe(e,t,n){var r,o;if(k.unmount&&k.unmount(e),(r=e.ref)&&(r.current&&r.current!=e.__e||ke(r,null,t)),(r=e.__c)!=null){if(r.componentWillUnmount)try{r.componentWillUnmount()}catch(a){k.__e(a,t)}r.base=r.__P=r.__n=null}if(r=e.__k)for(o=0;o<r.length;o++)r[o]&&Qe(r[o],t,n||typeof e.type!="function");n||ye(e.__e),e.__c=e.__=e.__e=void 0}function Yt(e,t,n){return this.constructor(e,n)}function Ze(e,t,n){var r,o,a,s;t==document&&(t=document.documentElement),k.__&&k.__(e,t),o=(r=typeof n=="function")?null:n&&n.__k||t.__k,a=[],s=[],xe(t,e=(!r&&n||t).__k=we(se,null,[e]),o||te,te,t.namespaceURI,!r&&n?[n]:o?null:t.firstChild?oe.call(t.childNodes):null,a,!r&&n?n:o?o.__e:t.firstChild,r,s),Xe(a,e,s),e.props.children=null}oe=ne.slice,k={__e:function(e,t,n,r){for(var o,a,s;t=t.__;)if((o=t.__c)&&!o.__)try{if((a=o.constructor)&&a.getDerivedStateFromError!=null&&(o.setState(a.getDerivedStateFromError(e)),s=o.__d),o.componentDidCatch!=null&&(o.componentDidCatch(e,r||{}),s=o.__d),s)return o.__E=o}catch(i){e=i}throw e}},ze=0,Wt=function(e){return e!=null&&e.constructor===void 0},ee.prototype.setState=function(e,t){var n;n=this.__s!=null&&this.__s!=this.state?this.__s:this.__s=A({},this.state),typeof e=="function"&&(e=e(A({},n),this.props)),e&&A(n,e),e!=null&&this.__v&&(t&&this._sb.push(t),Ue(this))},ee.prototype.forceUpdate=function(e){this.__v&&(this.__e=!0,e&&this.__h.push(e),Ue(this))},ee.prototype.render=se,F=[],Ie=typeof Promise=="function"?Promise.prototype.then.bind(Promise.resolve()):setTimeout,We=function(e,t){return e.__v.__b-t.__v.__b},re.__r=0,ge=Math.random().toString(8),Q="__d"+ge,q="__a"+ge,qe=/(PointerCapture)$|Capture$/i,be=0,$e=Be(!1),ve=Be(!0),qt=0;var V,E,Se,et,J=0,lt=[],T=k,tt=T.__b,nt=T.__r,rt=T.diffed,ot=T.__c,at=T.unmount,st=T.__;function Ee(e,t){T.__h&&T.__h(E,e,J||t),J=0;var n=E.__H||(E.__H={__:[],__h:[]});return e>=n.__.length&&n.__.push({}),n.__[e]}function $(e){return J=1,Qt(ut,e)}function Qt(e,t,n){var r=Ee(V++,2);if(r.t=e,!r.__c&&(r.__=[n?n(t):ut(void 0,t),function(i){var p=r.__N?r.__N[0]:r.__[0],d=r.t(p,i);p!==d&&(r.__N=[d,r.__[1]],r.__c.setState({}))}],r.__c=E,!E.__f)){var o=function(i,p,d){if(!r.__c.__H)return!0;var m=!1,_=r.__c.props!==i;if(r.__c.__H.__.some(function(f){if(f.__N){m=!0;var h=f.__[0];f.__=f.__N,f.__N=void 0,h!==f.__[0]&&(_=!0)}}),a){var l=a.call(this,i,p,d);return m?l||_:l}return!m||_};E.__f=!0;var a=E.shouldComponentUpdate,s=E.componentWillUpdate;E.componentWillUpdate=function(i,p,d){if(this.__e){var m=a;a=void 0,o(i,p,d),a=m}s&&s.call(this,i,p,d)},E.shouldComponentUpdate=o}return r.__N||r.__}function L(e,t){var n=Ee(V++,3);!T.__s&&dt(n.__H,t)&&(n.__=e,n.u=t,E.__H.__h.push(n))}function G(e){return J=5,le(function(){return{current:e}},[])}function le(e,t){var n=Ee(V++,7);return dt(n.__H,t)&&(n.__=e(),n.__H=t,n.__h=e),n.__}function ct(e,t){return J=8,le(function(){return e},t)}function Zt(){for(var e;e=lt.shift();){var t=e.__H;if(e.__P&&t)try{t.__h.some(ie),t.__h.some(Ce),t.__h=[]}catch(n){t.__h=[],T.__e(n,e.__v)}}}T.__b=function(e){E=null,tt&&tt(e)},T.__=function(e,t){e&&t.__k&&t.__k.__m&&(e.__m=t.__k.__m),st&&st(e,t)},T.__r=function(e){nt&&nt(e),V=0;var t=(E=e.__c).__H;t&&(Se===E?(t.__h=[],E.__h=[],t.__.some(function(n){n.__N&&(n.__=n.__N),n.u=n.__N=void 0})):(t.__h.some(ie),t.__h.some(Ce),t.__h=[],V=0)),Se=E},T.diffed=function(e){rt&&rt(e);var t=e.__c;t&&t.__H&&(t.__H.__h.length&&(lt.push(t)!==1&&et===T.requestAnimationFrame||((et=T.requestAnimationFrame)||en)(Zt)),t.__H.__.some(function(n){n.u&&(n.__H=n.u,n.u=void 0)})),Se=E=null},T.__c=function(e,t){t.some(function(n){try{n.__h.some(ie),n.__h=n.__h.filter(function(r){return!r.__||Ce(r)})}catch(r){t.some(function(o){o.__h&&(o.__h=[])}),t=[],T.__e(r,n.__v)}}),ot&&ot(e,t)},T.unmount=function(e){at&&at(e);var t,n=e.__c;n&&n.__H&&(n.__H.__.some(function(r){try{ie(r)}catch(o){t=o}}),n.__H=void 0,t&&T.__e(t,n.__v))};var it=typeof requestAnimationFrame=="function";function en(e){var t,n=function(){clearTimeout(r),it&&cancelAnimationFrame(t),setTimeout(e)},r=setTimeout(n,35);it&&(t=requestAnimationFrame(n))}function ie(e){var t=E,n=e.__c;typeof n=="function"&&(e.__c=void 0,n()),E=t}function Ce(e){var t=E;e.__c=e.__(),E=t}function dt(e,t){return!e||e.length!==t.length||t.some(function(n,r){return n!==e[r]})}function ut(e,t){return typeof t=="function"?t(e):t}var Te="spillway.token",ce=sessionStorage.getItem(Te)||"",Pe=new Set,Le=class extends Error{constructor(t,n,r){super(r),this.status=t,this.code=n}};function Oe(){return ce}function W(e){ce=e,e?sessionStorage.setItem(Te,e):sessionStorage.removeItem(Te)}function pt(e){return Pe.add(e),()=>Pe.delete(e)}function de(){return ce?{Authorization:`Bearer ${ce}`}:{}}async function ft(e){let t="http_"+e.status,n=e.statusText||`HTTP ${e.status}`;try{let o=await e.json();o&&o.error&&({code:t,message:n}=o.error)}catch{}let r=new Le(e.status,t,n);return e.status===401&&Pe.forEach(o=>o(r)),r}async function P(e,{method:t="GET",body:n,signal:r}={}){let o={...de()};n!==void 0&&(o["Content-Type"]="application/json");let a=await fetch(e,{method:t,headers:o,signal:r,body:n===void 0?void 0:JSON.stringify(n)});if(!a.ok)throw await ft(a);return a.json()}async function _t(e,t){let n=await fetch(e,{headers:de(),signal:t});if(!n.ok)throw await ft(n);return URL.createObjectURL(await n.blob())}var ht=function(e,t,n,r){var o;t[0]=0;for(var a=1;a<t.length;a++){var s=t[a++],i=t[a]?(t[0]|=s?1:2,n[t[a++]]):t[++a];s===3?r[0]=i:s===4?r[1]=Object.assign(r[1]||{},i):s===5?(r[1]=r[1]||{})[t[++a]]=i:s===6?r[1][t[++a]]+=i+"":s?(o=e.apply(i,ht(e,i,n,["",null])),r.push(o),i[0]?t[0]|=2:(t[a-2]=0,t[a]=o)):r.push(i)}return r},mt=new Map;function gt(e){var t=mt.get(this);return t||(t=new Map,mt.set(this,t)),(t=ht(this,t.get(e)||(t.set(e,t=function(n){for(var r,o,a=1,s="",i="",p=[0],d=function(l){a===1&&(l||(s=s.replace(/^\s*\n\s*|\s*\n\s*$/g,"")))?p.push(0,l,s):a===3&&(l||s)?(p.push(3,l,s),a=2):a===2&&s==="..."&&l?p.push(4,l,0):a===2&&s&&!l?p.push(5,0,!0,s):a>=5&&((s||!l&&a===5)&&(p.push(a,0,s,o),a=6),l&&(p.push(a,l,0,o),a=6)),s=""},m=0;m<n.length;m++){m&&(a===1&&d(),d(m));for(var _=0;_<n[m].length;_++)r=n[m][_],a===1?r==="<"?(d(),p=[p],a=3):s+=r:a===4?s==="--"&&r===">"?(a=1,s=""):s=r+s[0]:i?r===i?i="":s+=r:r==='"'||r==="'"?i=r:r===">"?(d(),a=1):a&&(r==="="?(a=5,o=s,s=""):r==="/"&&(a<5||n[m][_+1]===">")?(d(),a===3&&(p=p[0]),a=p,(p=p[0]).push(2,0,a),a=0):r===" "||r==="	"||r===`
`||r==="\r"?(d(),a=2):s+=r),a===3&&s==="!--"&&(a=4,p=p[0])}return d(),p}(e)),t),arguments,[])).length>1?t:t[0]}var u=gt.bind(we);function j(e){if(e==null)return"";let t=Math.max(0,Math.round(e));return t<60?`${t}s`:t<3600?`${Math.floor(t/60)}m ${t%60}s`:t<86400?`${Math.floor(t/3600)}h ${Math.floor(t%3600/60)}m`:`${Math.floor(t/86400)}d ${Math.floor(t%86400/3600)}h`}function H(e){return e==null?"":j(Date.now()/1e3-e)}function ue(e){return e==null?"":new Date(e*1e3).toLocaleTimeString()}function $t(e){if(e==null)return"";let t=["B","KiB","MiB","GiB","TiB"],n=e,r=0;for(;n>=1024&&r<t.length-1;)n/=1024,r+=1;return`${n.toFixed(r?1:0)} ${t[r]}`}function Me(e){return`${Math.round((e||0)*100)}%`}function K(e){let t=[...e].sort((o,a)=>o-a),n=[],r=0;for(;r<t.length;){let o=r;for(;o+1<t.length&&t[o+1]===t[o]+1;)o+=1;n.push(o>r?`${t[r]}-${t[o]}`:`${t[r]}`),r=o+1}return n.join(",")}var vt={w:"waiting",s:"dispatched",r:"running",d:"done",f:"failed"},bt={w:"#c9ced6",s:"#8fb8e8",r:"#2f7fd8",d:"#2e9e5b",f:"#d64541"};function tn(e){return e>4e3?7:e>1e3?10:e>200?14:22}function nn(e){let t=new Int32Array(e.frames.length),n=0;return e.tasks.size.forEach((r,o)=>{t.fill(o,n,n+r),n+=r}),t}function yt({grid:e,selected:t,onSelect:n}){let r=G(null),o=G(null),[a,s]=$(800),[i,p]=$(null),d=le(()=>nn(e),[e]),m=e.frames.length,_=tn(m),l=Math.max(1,Math.floor(a/_)),f=Math.ceil(m/l);L(()=>{let c=new ResizeObserver(g=>s(Math.floor(g[0].contentRect.width)));return c.observe(o.current),()=>c.disconnect()},[]),L(()=>{let c=r.current,g=window.devicePixelRatio||1;c.width=l*_*g,c.height=f*_*g,c.style.width=`${l*_}px`,c.style.height=`${f*_}px`;let w=c.getContext("2d");w.setTransform(g,0,0,g,0,0),w.clearRect(0,0,l*_,f*_);let C=_>8?1:.5;for(let[x,O]of Object.entries(bt)){w.fillStyle=O;for(let S=e.states.indexOf(x);S!==-1;S=e.states.indexOf(x,S+1))w.fillRect(S%l*_,Math.floor(S/l)*_,_-C,_-C)}t.size&&(w.strokeStyle="#111",w.lineWidth=2,e.frames.forEach((x,O)=>{t.has(x)&&w.strokeRect(O%l*_+1,Math.floor(O/l)*_+1,_-3,_-3)}))},[e,l,f,_,t]);let h=c=>{let g=r.current.getBoundingClientRect(),w=Math.floor((c.clientX-g.left)/_),x=Math.floor((c.clientY-g.top)/_)*l+w;return w<l&&x>=0&&x<m?x:null},y=c=>{let g=h(c);if(g===null)return p(null);let w=o.current.getBoundingClientRect();p({i:g,x:c.clientX-w.left+14,y:c.clientY-w.top+14})},b=c=>{let g=h(c);g!==null&&n(e.frames[g],c.shiftKey)},v=null;if(i){let c=d[i.i],g=e.tasks,w=g.server[c]>=0?e.servers[g.server[c]]:"\u2014",C=g.started[c]==null?null:e.time_base+g.started[c],x=g.finished[c]==null?null:e.time_base+g.finished[c];v=u`<div class="tooltip" id="grid-tooltip" style=${{left:`${i.x}px`,top:`${i.y}px`}}>
      <b>frame ${e.frames[i.i]}</b> · ${vt[e.states[i.i]]}<br />
      task ${g.index[c]} · attempt ${g.attempt[c]}<br />
      server ${w}<br />
      ${C?u`started ${ue(C)}${x?u` · took ${j(x-C)}`:""}`:"not started"}
    </div>`}return u`<div class="grid-box" ref=${o} onMouseLeave=${()=>p(null)}>
    <canvas id="frame-grid" ref=${r} data-states=${e.states} onMouseMove=${y} onClick=${b}></canvas>
    ${v}
    <div class="legend">
      ${Object.entries(vt).map(([c,g])=>u`<span><i style=${{background:bt[c]}}></i>${g}</span>`)}
      ${t.size?u`<span class="selection">selected: ${K(t)}</span>`:u`<span class="dim">click frames to select, shift-click for a range</span>`}
    </div>
  </div>`}async function xt(e,t){let n=e.getReader(),r;for(;!(r=await n.read()).done;)t(r.value)}function kt(e){let t,n,r,o=!1;return function(s){t===void 0?(t=s,n=0,r=-1):t=rn(t,s);let i=t.length,p=0;for(;n<i;){o&&(t[n]===10&&(p=++n),o=!1);let d=-1;for(;n<i&&d===-1;++n)switch(t[n]){case 58:r===-1&&(r=n-p);break;case 13:o=!0;case 10:d=n;break}if(d===-1)break;e(t.subarray(p,d),r),p=n,r=-1}p===i?t=void 0:p!==0&&(t=t.subarray(p),n-=p)}}function St(e,t,n){let r=wt(),o=new TextDecoder;return function(s,i){if(s.length===0)n?.(r),r=wt();else if(i>0){let p=o.decode(s.subarray(0,i)),d=i+(s[i+1]===32?2:1),m=o.decode(s.subarray(d));switch(p){case"data":r.data=r.data?r.data+`
`+m:m;break;case"event":r.event=m;break;case"id":e(r.id=m);break;case"retry":let _=parseInt(m,10);isNaN(_)||t(r.retry=_);break}}}}function rn(e,t){let n=new Uint8Array(e.length+t.length);return n.set(e),n.set(t,e.length),n}function wt(){return{data:"",event:"",id:"",retry:void 0}}var on=function(e,t){var n={};for(var r in e)Object.prototype.hasOwnProperty.call(e,r)&&t.indexOf(r)<0&&(n[r]=e[r]);if(e!=null&&typeof Object.getOwnPropertySymbols=="function")for(var o=0,r=Object.getOwnPropertySymbols(e);o<r.length;o++)t.indexOf(r[o])<0&&Object.prototype.propertyIsEnumerable.call(e,r[o])&&(n[r[o]]=e[r[o]]);return n},pe="text/event-stream",an=1e3,Ct="last-event-id";function Re(e,t){var{signal:n,headers:r,onopen:o,onmessage:a,onclose:s,onerror:i,openWhenHidden:p,fetch:d}=t,m=on(t,["signal","headers","onopen","onmessage","onclose","onerror","openWhenHidden","fetch"]);return new Promise((_,l)=>{let f=Object.assign({},r);f.accept||(f.accept=pe);let h;function y(){h.abort(),document.hidden||C()}p||document.addEventListener("visibilitychange",y);let b=an,v=0;function c(){document.removeEventListener("visibilitychange",y),window.clearTimeout(v),h.abort()}n?.addEventListener("abort",()=>{c(),_()});let g=d??window.fetch,w=o??sn;async function C(){var x;h=new AbortController;try{let O=await g(e,Object.assign(Object.assign({},m),{headers:f,signal:h.signal}));await w(O),await xt(O.body,kt(St(S=>{S?f[Ct]=S:delete f[Ct]},S=>{b=S},a))),s?.(),c(),_()}catch(O){if(!h.signal.aborted)try{let S=(x=i?.(O))!==null&&x!==void 0?x:b;window.clearTimeout(v),v=window.setTimeout(C,S)}catch(S){c(),l(S)}}}C()})}function sn(e){let t=e.headers.get("content-type");if(!t?.startsWith(pe))throw new Error(`Expected content-type to be ${pe}, Actual: ${t}`)}var Ae=new Set,z=null,Et=!1,je=new Set,fe=class extends Error{};function X(e){Et=e,je.forEach(t=>t(e))}function ln(e){Ae.forEach(t=>t(e))}function Tt(e){z&&z.abort(),z=new AbortController,Re("/api/v1/events",{headers:de(),signal:z.signal,openWhenHidden:!0,async onopen(t){if(t.status===401)throw e(),new fe("unauthorized");if(!t.ok)throw new Error(`event stream: HTTP ${t.status}`);X(!0)},onmessage(t){if(!t.event)return;let n=t.data?JSON.parse(t.data):{};ln({type:t.event,...n})},onclose(){throw X(!1),new Error("event stream closed")},onerror(t){if(X(!1),t instanceof fe)throw t;return 2e3}}).catch(()=>X(!1))}function Pt(){z&&z.abort(),z=null,X(!1)}function Lt(){let[e,t]=$(Et);return L(()=>(je.add(t),()=>je.delete(t)),[]),e}function U(e,t,n,r=500){L(()=>{let o={timer:null,last:0,running:!1,again:!1},a=!0,s=async()=>{if(a){if(o.running){o.again=!0;return}o.running=!0,o.last=Date.now();try{await e()}finally{o.running=!1,o.again&&a&&(o.again=!1,i())}}},i=()=>{if(o.timer)return;let d=Math.max(0,o.last+r-Date.now());o.timer=setTimeout(()=>{o.timer=null,s()},d)},p=d=>{(d.type==="hello"||t(d))&&i()};return Ae.add(p),s(),()=>{a=!1,Ae.delete(p),clearTimeout(o.timer),o.timer=null}},n)}function N({state:e}){return u`<span class=${`badge state-${e}`}>${e}</span>`}function me({job:e,wide:t}){let n=e.progress,r=n.tasks,o=Math.max(1,r.waiting+r.dispatched+r.running+r.done+r.failed),a=(s,i,p)=>s?u`<span class=${i} style=${{width:`${100*s/o}%`}} title=${`${s} ${p}`}></span>`:null;return u`<div class=${t?"progress wide":"progress"}>
    <div class="bar">
      ${a(r.done,"done","tasks done")}${a(r.running+r.dispatched,"running","tasks running")}
      ${a(r.failed,"failed","tasks failed")}
    </div>
    <span class="counts">
      <b>${n.frames_done}/${n.frames_total}</b>
      <span class="c-done" title="tasks done">${r.done}✓</span>
      <span class="c-running" title="tasks running">${r.running+r.dispatched}▶</span>
      <span class="c-failed" title="tasks failed">${r.failed}✗</span>
      <span class="c-waiting" title="tasks waiting">${r.waiting}◌</span>
    </span>
  </div>`}function M({error:e}){return e?u`<div class="error" role="alert">${e.message||String(e)}</div>`:null}var _e=null;function he(e,t="Confirm"){return new Promise(n=>_e&&_e({message:e,confirmLabel:t,resolve:n}))}function Ot(){let[e,t]=$(null);if(L(()=>(_e=t,()=>_e=null),[]),!e)return null;let n=r=>{t(null),e.resolve(r)};return u`<div class="overlay" onClick=${()=>n(!1)}>
    <div class="dialog" role="dialog" onClick=${r=>r.stopPropagation()}>
      <p>${e.message}</p>
      <div class="buttons">
        <button id="confirm-cancel" onClick=${()=>n(!1)}>Keep</button>
        <button id="confirm-ok" class="danger" onClick=${()=>n(!0)}>${e.confirmLabel}</button>
      </div>
    </div>
  </div>`}var Mt=50,cn=["","queued","running","paused","done","failed","cancelled"],dn=["","builtin","povray","blender"],un=[["name","Name"],["state","State"],[null,"Progress"],[null,"Package"],[null,"Placement"],["priority","Priority"],[null,"Owner"],["created","Age"],[null,"ETA"]];function Ne(e){return e.origin_job_id?`\u2190 from ${e.origin_site}`:e.placement==="local"?"local":`\u2192 ${e.placement}${e.remote_job_id?` (${e.remote_job_id})`:""}`}function pn(e,t,n){let r=new URLSearchParams({limit:Mt,offset:n,sort:t});for(let[o,a]of Object.entries(e))a&&r.set(o,a);return r.toString()}function Rt({peers:e,initial:t}){let[n,r]=$({state:"",package:"",placement:"",owner:"",q:"",...t}),[o,a]=$("-created"),[s,i]=$(0),[p,d]=$(null),[m,_]=$(null),[l,f]=$(Date.now()/1e3),h=pn(n,o,s);U(async()=>{try{d(await P(`/api/v1/jobs?${h}`)),f(Date.now()/1e3),_(null)}catch(c){_(c)}},c=>c.type==="change"&&(c.all||c.jobs.length>0),[h],1e3);let y=c=>g=>{r({...n,[c]:g.target.value}),i(0)},b=c=>{a(o===`-${c}`?c:`-${c}`),i(0)},v=p&&p.page;return u`<section id="jobs-view">
    <div class="filters">
      <input id="job-search" type="search" placeholder="Search name or id" value=${n.q} onInput=${y("q")} />
      <label>State <select id="filter-state" value=${n.state} onChange=${y("state")}>
        ${cn.map(c=>u`<option value=${c}>${c||"any"}</option>`)}
      </select></label>
      <label>Package <select id="filter-package" value=${n.package} onChange=${y("package")}>
        ${dn.map(c=>u`<option value=${c}>${c||"any"}</option>`)}
      </select></label>
      <label>Placement <select id="filter-placement" value=${n.placement} onChange=${y("placement")}>
        <option value="">any</option><option value="local">local</option>
        <option value="forwarded">forwarded to a peer</option><option value="accepted">accepted from a peer</option>
        ${[...new Set([...e||[],...t.placement?[t.placement]:[]])].filter(c=>!["local","forwarded","accepted"].includes(c)).map(c=>u`<option value=${c}>peer ${c}</option>`)}
      </select></label>
      <input id="filter-owner" placeholder="Owner" value=${n.owner} onInput=${y("owner")} size="10" />
    </div>
    <${M} error=${m} />
    <table class="jobs">
      <thead><tr>
        ${un.map(([c,g])=>c?u`<th class="sortable" onClick=${()=>b(c)}>${g}${o===c?" \u25B2":o===`-${c}`?" \u25BC":""}</th>`:u`<th>${g}</th>`)}
      </tr></thead>
      <tbody>
        ${p&&p.jobs.map(c=>u`<tr class="job-row" data-job=${c.id} key=${c.id}>
            <td><a href=${`#/job/${c.id}`}>${c.name}</a><div class="dim mono">${c.id}</div></td>
            <td><${N} state=${c.state} />
              ${c.why_waiting&&u`<div class="dim small why">${c.why_waiting}</div>`}
              ${c.state==="failed"&&c.error&&u`<div class="error small">${c.error}</div>`}</td>
            <td><${me} job=${c} /></td>
            <td class="mono">${c.requirement}</td>
            <td class="placement">${Ne(c)}${c.remote&&c.remote.frames_done!=null?u`<div class="dim small">remote ${c.remote.state||""} ${c.remote.frames_done}/${c.frame_count}</div>`:null}</td>
            <td>${c.priority}</td>
            <td>${c.owner}</td>
            <td title=${new Date(c.created_at*1e3).toLocaleString()}>${j(l-c.created_at)}</td>
            <td>${c.eta_s!=null?j(c.eta_s):""}</td>
          </tr>`)}
      </tbody>
    </table>
    ${p&&p.jobs.length===0&&u`<p class="empty">No jobs match.</p>`}
    ${v&&u`<div class="pager">
      <button disabled=${s===0} onClick=${()=>i(Math.max(0,s-Mt))}>‹ Newer</button>
      <span id="page-info">${v.total?`${s+1}\u2013${s+p.jobs.length} of ${v.total}`:"0 jobs"}</span>
      <button disabled=${v.next_offset==null} onClick=${()=>i(v.next_offset)}>Older ›</button>
    </div>`}
  </section>`}var fn=256*1024;function At(e){return typeof e=="object"&&e!==null?e.attempt:e}function jt({jobId:e,task:t,features:n,onClose:r}){let[o,a]=$(null),[s,i]=$({text:"",meta:null,error:null}),p=G(null);L(()=>{if(!n.logs)return;let _=new AbortController,l="",f=!0;return(async()=>{let h=0,y=`/api/v1/jobs/${e}/tasks/${t.index}/log`;for(;f;){let b=new URLSearchParams({offset:h});o!=null&&b.set("attempt",o),h>0&&b.set("wait",10);let v;try{v=await P(`${y}?${b}`,{signal:_.signal})}catch(c){f&&i({text:l,meta:null,error:c});return}if(l=(l+v.text).slice(-fn),i({text:l,meta:v,error:null}),v.complete)return;h=v.next_offset}})(),()=>{f=!1,_.abort()}},[e,t.index,o,n.logs]),L(()=>{p.current&&(p.current.scrollTop=p.current.scrollHeight)},[s.text]);let d=s.meta,m=n.logs?s.text:t.log_tail||"";return u`<section class="log-panel" id="log-panel">
    <header>
      <b>Log of task ${t.index}</b> (frames ${t.frames}) · ${t.state}
      ${d&&d.attempts&&d.attempts.length>1&&u`<select id="log-attempt" value=${o??d.attempt} onChange=${_=>a(Number(_.target.value))}>
        ${d.attempts.map(_=>u`<option value=${At(_)}>attempt ${At(_)}</option>`)}
      </select>`}
      ${d&&u`<span class="dim"> on ${d.server||"\u2014"}${d.complete?"":" \xB7 live"}</span>`}
      ${d&&d.truncated_bytes?u`<span class="dim"> · first ${d.truncated_bytes} bytes not kept</span>`:null}
      <button class="close" onClick=${r}>×</button>
    </header>
    ${t.error&&u`<div class="error" id="task-error">${t.error}</div>`}
    ${!n.logs&&u`<div class="dim small">The last lines the server reported for this task.</div>`}
    ${s.error&&u`<div class="error">${s.error.message}</div>`}
    <pre ref=${p} id="log-text">${m||"(no output)"}</pre>
  </section>`}var _n=12;function mn(e,t=_n){let n=e.tasks.finished.map((s,i)=>[s,i]).filter(([s])=>s!=null).sort((s,i)=>i[0]-s[0]),r=[],o=0;e.tasks.size.forEach(s=>{r.push(o),o+=s});let a=[];for(let[s,i]of n){for(let p=r[i]+e.tasks.size[i]-1;p>=r[i]&&a.length<t;p-=1)e.states[p]==="d"&&a.push({frame:e.frames[p],version:s});if(a.length>=t)break}return a}function Ft(e){let[t,n]=$({url:null,error:null});return L(()=>{if(!e)return;let r=new AbortController,o=null;return _t(e,r.signal).then(a=>{o=a,n({url:a,error:null})}).catch(a=>a.name!=="AbortError"&&n({url:null,error:a})),()=>{r.abort(),o&&URL.revokeObjectURL(o)}},[e]),t}function Nt({jobId:e,item:t,previews:n,large:r,onOpen:o}){let a=n?"/preview":"",{url:s,error:i}=Ft(`/api/v1/jobs/${e}/frames/${t.frame}${a}?v=${t.version}`);return u`<figure class=${r?"latest":"thumb"} data-frame=${t.frame} onClick=${()=>o(t.frame)}>
    ${s?u`<img src=${s} alt=${`frame ${t.frame}`} />`:u`<div class="placeholder">${i?"no preview":"\u2026"}</div>`}
    <figcaption>frame ${t.frame}</figcaption>
  </figure>`}function Ht({jobId:e,grid:t,previews:n}){let[r,o]=$(null),a=mn(t);if(!a.length)return u`<p class="dim">No finished frames yet.</p>`;let[s,...i]=a;return u`<div class="media">
    <${Nt} jobId=${e} item=${s} previews=${n} large=${!0} onOpen=${o} key=${`L${s.frame}-${s.version}`} />
    <div class="thumbs">
      ${i.map(p=>u`<${Nt} jobId=${e} item=${p} previews=${n} onOpen=${o} key=${`${p.frame}-${p.version}`} />`)}
    </div>
    ${r!=null&&u`<${hn} jobId=${e} frame=${r} onClose=${()=>o(null)} />`}
  </div>`}function hn({jobId:e,frame:t,onClose:n}){let{url:r,error:o}=Ft(`/api/v1/jobs/${e}/frames/${t}`);return u`<div class="overlay" id="full-frame" onClick=${n}>
    <div class="frame-view">
      ${r?u`<img src=${r} alt=${`frame ${t} full size`} />`:u`<p>${o?o.message:"loading\u2026"}</p>`}
      <p>frame ${t} · click to close</p>
    </div>
  </div>`}var Fe=100,gn=["queued","running","paused"];function $n({job:e,selected:t,clearSelection:n,onDone:r}){let[o,a]=$(String(e.priority)),[s,i]=$(!1),[p,d]=$(null),m=e.placement==="local",_=async(h,y,b,v)=>{if(!(b&&!await he(b,v))){i(!0);try{await P(`/api/v1/jobs/${e.id}/${h}`,{method:"POST",body:y}),d(null),h==="retry"&&y&&n(),r()}catch(c){d(c)}finally{i(!1)}}},l=e.progress.tasks,f=gn.includes(e.state);return u`<div class="controls">
    ${["queued","running"].includes(e.state)&&u`<button id="btn-pause" disabled=${s} onClick=${()=>_("pause")}>Pause</button>`}
    ${e.state==="paused"&&u`<button id="btn-resume" disabled=${s} onClick=${()=>_("resume")}>Resume</button>`}
    ${f&&u`<button id="btn-cancel" class="danger" disabled=${s}
      onClick=${()=>_("cancel",void 0,`Cancel job ${e.name}? Frames still rendering are stopped and their work is lost.`,"Cancel job")}>Cancel…</button>`}
    ${m&&l.failed>0&&u`<button id="btn-retry" disabled=${s} onClick=${()=>_("retry")}>Retry ${l.failed} failed</button>`}
    ${m&&t.size>0&&u`<button id="btn-requeue" disabled=${s}
      onClick=${()=>_("retry",{frames:K(t)},`Render frames ${K(t)} again? Their current output is replaced.`,"Render again")}>
      Requeue ${t.size} selected</button>`}
    ${f&&u`<span class="priority">Priority
      <input id="priority-input" type="number" min="0" max="100" value=${o} onInput=${h=>a(h.target.value)} />
      <button id="btn-priority" disabled=${s||o===String(e.priority)}
        onClick=${()=>_("priority",{priority:Number(o)})}>Set</button></span>`}
    <${M} error=${p} />
  </div>`}function vn({job:e}){let t=e.profile,n=[["Owner",e.owner],["Package",e.requirement],["Frames",`${e.frames} (${e.frame_count}, chunks of ${e.chunk_size})`],["Scene",e.scene],["Submitted",`${new Date(e.created_at*1e3).toLocaleString()} (${H(e.created_at)} ago)`],["ETA",e.eta_s!=null?j(e.eta_s):"\u2014"],["Time per frame",e.seconds_per_frame!=null?`${e.seconds_per_frame.toFixed(1)} s`:"\u2014"],["Needs",[t.min_memory_mb?`${t.min_memory_mb} MiB`:null,t.min_cores>1?`${t.min_cores} cores`:null,t.gpu?"a GPU":null,(t.tags||[]).length?`tags ${t.tags.join(", ")}`:null].filter(Boolean).join(", ")||"any server"],["Attempts",`up to ${t.max_attempts}, ${t.task_timeout_s} s per task${t.max_servers?`, at most ${t.max_servers} servers`:""}`],["Settings",Object.entries(e.settings||{}).map(([r,o])=>`${r}=${JSON.stringify(o)}`).join(" ")||"\u2014"],["Output",e.storage_dir]];return u`<dl class="facts">${n.map(([r,o])=>u`<dt>${r}</dt><dd>${o}</dd>`)}</dl>`}function bn({job:e}){if(e.origin_job_id)return u`<div class="fed" id="fed-accepted">Accepted from <b>${e.origin_site}</b>, where it is job <span class="mono">${e.origin_job_id}</span>.</div>`;if(e.placement==="local")return null;let t=e.remote||{},n=e.transfer||{};return u`<div class="fed" id="fed-forwarded">
    Forwarded to <b>${e.placement}</b>${e.placement_reason?u` — ${e.placement_reason}`:""}.<br />
    Remote job <span class="mono" id="remote-job-id">${e.remote_job_id||t.job_id||"\u2014"}</span>
    · remote state ${t.state||"\u2014"} · <span id="remote-frames">${t.frames_done??0}/${e.frame_count}</span> frames done there
    ${t.last_contact_at?u` · last heard ${H(t.last_contact_at)} ago`:""}<br />
    ${e.peers_tried&&e.peers_tried.length>1?u`Offered to ${e.peers_tried.join(", ")}.<br />`:""}
    Transfer: ${$t(n.bytes_sent||0)} sent, ${n.blobs_sent??0} blobs sent, ${n.blobs_skipped??0} already there
    ${t.forward_state?u` · ${t.forward_state}`:""}
  </div>`}function yn({jobId:e,page:t,filter:n,setFilter:r,offset:o,setOffset:a,onLog:s}){return u`<section>
    <h3>Tasks
      <select id="task-filter" value=${n} onChange=${i=>{r(i.target.value),a(0)}}>
        <option value="">all</option>
        ${["waiting","dispatched","running","done","failed"].map(i=>u`<option value=${i}>${i}</option>`)}
      </select>
    </h3>
    <table class="tasks">
      <thead><tr><th>#</th><th>Frames</th><th>State</th><th>Attempt</th><th>Server</th><th>Started</th><th>Took</th><th>Error</th><th></th></tr></thead>
      <tbody>
        ${t&&t.tasks.map(i=>u`<tr class="task-row" data-task=${i.index} data-state=${i.state} key=${i.id}>
          <td>${i.index}</td><td class="mono">${i.frames}</td><td><${N} state=${i.state} /></td>
          <td>${i.attempt}${i.failures?u` <span class="c-failed">(${i.failures} failed)</span>`:""}</td>
          <td>${i.server||"\u2014"}</td><td>${ue(i.started_at)}</td>
          <td>${i.started_at&&i.finished_at?j(i.finished_at-i.started_at):""}</td>
          <td class="error small">${i.error}</td>
          <td><button class="link log-btn" onClick=${()=>s(i)}>log</button></td>
        </tr>`)}
      </tbody>
    </table>
    ${t&&t.tasks_page.total>Fe&&u`<div class="pager">
      <button disabled=${o===0} onClick=${()=>a(Math.max(0,o-Fe))}>‹</button>
      ${o+1}–${o+t.tasks.length} of ${t.tasks_page.total}
      <button disabled=${t.tasks_page.next_offset==null} onClick=${()=>a(t.tasks_page.next_offset)}>›</button>
    </div>`}
  </section>`}function wn(e,t){let[n,r]=$({job:null,grid:null,tasks:null,error:null}),o=ct(async()=>{try{let[a,s,i]=await Promise.all([P(`/api/v1/jobs/${e}?tasks=0`),P(`/api/v1/jobs/${e}/grid`),P(`/api/v1/jobs/${e}/tasks?${t}`)]);r({job:a.job,grid:s,tasks:i,error:null})}catch(a){r(s=>({...s,error:a}))}},[e,t]);return U(o,a=>a.type==="change"&&(a.all||a.jobs.includes(e)),[e,t],700),[n,o]}function Ut({jobId:e,features:t}){let[n,r]=$(""),[o,a]=$(0),[s,i]=$(new Set),[p,d]=$(null),[m,_]=$(null),l=new URLSearchParams({offset:o,limit:Fe,...n?{state:n}:{}}).toString(),[{job:f,grid:h,tasks:y,error:b},v]=wn(e,l),c=(w,C)=>{let x=new Set(s);if(C&&p!=null){let O=h.frames.indexOf(p),S=h.frames.indexOf(w);for(let D=Math.min(O,S);D<=Math.max(O,S);D+=1)x.add(h.frames[D])}else x.has(w)?x.delete(w):x.add(w);d(w),i(x)};if(!f)return u`<section><${M} error=${b} />${!b&&u`<p>Loading…</p>`}</section>`;let g=m&&(y&&y.tasks.find(w=>w.id===m.id)||m);return u`<section id="job-view" data-job=${f.id} data-state=${f.state}>
    <h2><a href="#/jobs">Jobs</a> › ${f.name} <${N} state=${f.state} /> <span class="dim mono">${f.id}</span></h2>
    <${M} error=${b} />
    <${$n} job=${f} selected=${s} clearSelection=${()=>i(new Set)} onDone=${v} key=${`${f.id}-${f.priority}`} />
    <div class="summary">
      <${me} job=${f} wide=${!0} />
      ${f.why_waiting&&u`<div class="why" id="why-waiting">Waiting: ${f.why_waiting}</div>`}
      ${f.error&&u`<div class="error" id="job-error">${f.error}</div>`}
      <div class="placement">Placement: ${Ne(f)} · priority ${f.priority}</div>
      <${bn} job=${f} />
    </div>
    <div class="columns">
      <div class="main-col">
        <h3>Frames</h3>
        ${h&&u`<${yt} grid=${h} selected=${s} onSelect=${c} />`}
        <h3>Latest frames</h3>
        ${h&&u`<${Ht} jobId=${f.id} grid=${h} previews=${t.previews} />`}
      </div>
      <div class="side-col"><h3>Profile</h3><${vn} job=${f} /></div>
    </div>
    ${g&&u`<${jt} jobId=${f.id} task=${g} features=${t} onClose=${()=>_(null)} key=${g.id} />`}
    <${yn} jobId=${f.id} page=${y} filter=${n} setFilter=${r} offset=${o} setOffset=${a} onLog=${_} />
  </section>`}function xn(e){let t=[];e.preference!=null&&t.push(`preference ${e.preference}`),e.cost!=null&&t.push(`cost ${e.cost}`);let n=e.policy||{};return n.max_slots&&t.push(`at most ${n.max_slots} slots`),n.max_queued_jobs&&t.push(`${n.max_queued_jobs} queued jobs`),n.packages&&t.push(`packages ${n.packages.join(", ")}`),n.hours&&t.push(`hours ${n.hours}`),t.join(" \xB7 ")}function Dt(){let[e,t]=$(null),[n,r]=$(null);return U(async()=>{try{t((await P("/api/v1/peers")).peers),r(null)}catch(o){r(o)}},o=>o.type==="tick"||o.type==="change"&&o.all,[],1e3),u`<section id="peers-view">
    <${M} error=${n} />
    <table class="peers">
      <thead><tr><th>Peer</th><th>Link</th><th>Capacity</th><th>Servers</th><th>Terms</th><th>Forwarded to</th><th>Accepted from</th><th>Moved</th><th>Last error</th></tr></thead>
      <tbody>
        ${e&&e.map(o=>u`<tr class="peer-row" data-peer=${o.name} key=${o.name}>
          <td><b>${o.name}</b><div class="dim small mono">${o.url}</div></td>
          <td><${N} state=${o.state} />${o.last_seen?u`<div class="dim small">heard ${H(o.last_seen)} ago</div>`:""}</td>
          <td>${o.capacity?u`${o.capacity.free_slots} free slots on ${o.capacity.servers} servers · queue ${o.capacity.queue}`:u`<span class="dim">no advert yet</span>`}</td>
          <td class="small">${(o.servers||[]).map(a=>u`<div>${a.name} <span class="dim">${a.status} ${a.slots-a.free_slots}/${a.slots} · ${Object.keys(a.packages).join(", ")}</span></div>`)}</td>
          <td class="small">${xn(o)}</td>
          <td><a href=${`#/jobs?placement=${o.name}`}>${o.jobs_forwarded??0} jobs</a>${o.forward===!1?u`<div class="dim small">not allowed</div>`:""}</td>
          <td>${o.jobs_accepted??0} jobs${o.accept===!1?u`<div class="dim small">not allowed</div>`:""}</td>
          <td class="small">${o.bytes_sent!=null?`${o.bytes_sent} B sent`:""}${o.bytes_received!=null?` \xB7 ${o.bytes_received} B received`:""}</td>
          <td class="error small">${o.last_error||""}</td>
        </tr>`)}
      </tbody>
    </table>
    ${e&&e.length===0&&u`<p class="empty">This site has no peers configured ([[peers]] in its config).</p>`}
  </section>`}function Bt(){let[e,t]=$(null),[n,r]=$(null),o=async()=>{try{t((await P("/api/v1/servers")).servers),r(null)}catch(s){r(s)}};U(o,s=>s.type==="tick"||s.type==="change"&&s.servers,[],1e3);let a=async(s,i)=>{try{if(i==="forget"){if(!await he(`Forget render server ${s.name}? It registers again if it reconnects.`,"Forget"))return;await P(`/api/v1/servers/${s.id}`,{method:"DELETE"})}else await P(`/api/v1/servers/${s.id}/${i}`,{method:"POST"});await o()}catch(p){r(p)}};return u`<section id="servers-view">
    <${M} error=${n} />
    <table class="servers">
      <thead><tr><th>Name</th><th>Status</th><th>Rendering</th><th>Slots</th><th>Last hour</th><th>Hardware</th><th>Packages</th><th>Last error</th><th></th></tr></thead>
      <tbody>
        ${e&&e.map(s=>u`<tr class="server-row" data-server=${s.name} key=${s.id}>
          <td><b>${s.name}</b><div class="dim small">${s.host}</div></td>
          <td><${N} state=${s.status} />${s.last_heartbeat?u`<div class="dim small">seen ${H(s.last_heartbeat)} ago</div>`:""}</td>
          <td>${(s.current||[]).map(i=>u`<div><a href=${`#/job/${i.job}`} class="mono">${i.job}</a> <span class="dim">frames ${i.frames}</span></div>`)}</td>
          <td>${s.slots-s.free_slots}/${s.slots} busy</td>
          <td><div class="util"><span style=${{width:Me(s.utilisation)}}></span></div>${Me(s.utilisation)}</td>
          <td class="small">${s.cores} cores · ${Math.round(s.memory_mb/1024)} GiB${s.gpus.length?` \xB7 ${s.gpus.join(", ")}`:""}<div class="dim">${s.os} ${s.cpu_model}</div></td>
          <td class="small mono">${Object.entries(s.packages).map(([i,p])=>`${i} ${p}`).join(", ")}${s.tags.length?u`<div class="dim">tags ${s.tags.join(", ")}</div>`:""}</td>
          <td class="error small">${s.last_error?u`${s.last_error.error}<div class="dim">${H(s.last_error.at)} ago</div>`:""}</td>
          <td class="actions">
            ${s.status==="disabled"?u`<button class="btn-enable" onClick=${()=>a(s,"enable")}>Enable</button>`:u`<button class="btn-disable" onClick=${()=>a(s,"disable")}>Disable</button>`}
            ${s.status==="offline"&&u`<button class="danger" onClick=${()=>a(s,"forget")}>Forget…</button>`}
          </td>
        </tr>`)}
      </tbody>
    </table>
    ${e&&e.length===0&&u`<p class="empty">No render server has connected yet: start one with <code>spillway render-server --agent URL</code>.</p>`}
  </section>`}function zt(e){let[t,n=""]=e.replace(/^#/,"").split("?"),r=t.split("/").filter(Boolean),o=Object.fromEntries(new URLSearchParams(n));return r[0]==="job"&&r[1]?{view:"job",id:decodeURIComponent(r[1]),params:o}:r[0]==="servers"||r[0]==="peers"?{view:r[0],params:o}:{view:"jobs",params:o}}function kn(){let[e,t]=$(zt(location.hash));return L(()=>{let n=()=>t(zt(location.hash));return window.addEventListener("hashchange",n),()=>window.removeEventListener("hashchange",n)},[]),e}function It(e){let t=Object.keys(e&&e.paths||{});return{logs:t.some(n=>n.startsWith("/api/v1/jobs/")&&n.endsWith("/log")),previews:t.some(n=>n.startsWith("/api/v1/jobs/")&&n.endsWith("/preview"))}}function Sn({site:e,onLogin:t}){let[n,r]=$(""),[o,a]=$(null);return u`<form class="login" id="login" onSubmit=${async i=>{i.preventDefault(),W(n.trim());try{await P("/api/v1/jobs?limit=1"),t()}catch(p){W(""),a(p.status===401?new Error("That token was not accepted; check it and try again."):p)}}}>
    <h2>Spillway site ${e}</h2>
    <p>This agent needs a client token (one of <code>[auth] client_tokens</code> in its config).
      It is kept for this browser tab only.</p>
    <input id="token-input" type="password" autocomplete="current-password" placeholder="Token" value=${n}
      onInput=${i=>r(i.target.value)} autofocus />
    <button id="token-submit" type="submit">Sign in</button>
    <${M} error=${o} />
  </form>`}function Cn({site:e,route:t,authed:n,onSignOut:r}){let o=Lt(),a=(s,i)=>u`<a href=${`#/${s}`} id=${`nav-${s}`} class=${t.view===s||s==="jobs"&&t.view==="job"?"active":""}>${i}</a>`;return u`<nav>
    <span class="site">Spillway · <b id="site-name">${e}</b></span>
    ${a("jobs","Jobs")}${a("servers","Render servers")}${a("peers","Peers")}
    <span class="spacer"></span>
    <span id="live-status" class=${o?"live on":"live off"}>${o?"\u25CF live":"\u25CB reconnecting"}</span>
    ${n&&Oe()&&u`<button class="link" id="sign-out" onClick=${r}>sign out</button>`}
  </nav>`}function En(){let e=kn(),[t,n]=$(null),[r,o]=$({logs:!1,previews:!1}),[a,s]=$(!1),[i,p]=$([]),[d,m]=$(null);if(L(()=>(P("/api/v1/health").then(f=>{n(f),s(!f.client_auth||!!Oe())}).catch(m),P("/api/v1/openapi.json").then(f=>o(It(f))).catch(()=>o(It(null))),pt(()=>{W(""),s(!1)})),[]),L(()=>{if(a)return Tt(()=>{W(""),s(!1)}),P("/api/v1/peers").then(f=>p(f.peers.map(h=>h.name))).catch(()=>p([])),Pt},[a]),L(()=>{t&&(document.title=`Spillway \xB7 ${t.site}`)},[t]),d)return u`<main><${M} error=${d} /></main>`;if(!t)return u`<main><p>Connecting…</p></main>`;if(!a)return u`<main><${Sn} site=${t.site} onLogin=${()=>s(!0)} /></main>`;let _=()=>{W(""),s(!1)},l;return e.view==="job"?l=u`<${Ut} jobId=${e.id} features=${r} key=${e.id} />`:e.view==="servers"?l=u`<${Bt} />`:e.view==="peers"?l=u`<${Dt} />`:l=u`<${Rt} peers=${i} initial=${e.params} key=${JSON.stringify(e.params)} />`,u`<${Cn} site=${t.site} route=${e} authed=${a} onSignOut=${_} />
    <main>${l}</main>
    <${Ot} />`}Ze(u`<${En} />`,document.getElementById("app"));
